//! The stored record format: whatever `Record::write` writes, `Record::read` reads back the
//! same, one record after another; and no bytes make it panic.

use proptest::prelude::*;
use waterfall_core::{OpportunityContact, OpportunityKind, OpportunityState, Record, RecordBody};

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9_]{0,12}", "\\PC{0,20}"]
}

fn contact() -> impl Strategy<Value = OpportunityContact> {
    (text(), proptest::option::of(text()), any::<bool>()).prop_map(|(person, role, primary)| {
        OpportunityContact {
            person,
            role,
            primary,
        }
    })
}

fn body() -> impl Strategy<Value = RecordBody<String>> {
    let opt = || proptest::option::of(text());
    prop_oneof![
        (text(), text()).prop_map(|(account, attrs)| RecordBody::Account { account, attrs }),
        (text(), opt(), text()).prop_map(|(person, account, attrs)| RecordBody::Person {
            person,
            account,
            attrs
        }),
        (text(), text(), text()).prop_map(|(person, kind, attrs)| RecordBody::PersonActivity {
            person,
            kind,
            attrs
        }),
        (text(), text(), text()).prop_map(|(account, kind, attrs)| {
            RecordBody::AccountActivity {
                account,
                kind,
                attrs,
            }
        }),
        (
            text(),
            opt(),
            proptest::option::of(0..3usize),
            0..3usize,
            opt(),
            proptest::option::of(any::<f64>()),
            proptest::option::of(proptest::collection::vec(contact(), 0..3)),
        )
            .prop_map(
                |(opportunity, account, kind, state, stage, amount, contacts)| {
                    RecordBody::Opportunity {
                        opportunity,
                        account,
                        kind: kind.map(|k| {
                            [
                                OpportunityKind::NewBusiness,
                                OpportunityKind::Expansion,
                                OpportunityKind::Renewal,
                            ][k]
                        }),
                        state: [
                            OpportunityState::Open,
                            OpportunityState::Won,
                            OpportunityState::Lost,
                        ][state],
                        stage,
                        amount,
                        contacts,
                    }
                }
            ),
        (text(), text(), opt(), opt()).prop_map(|(person, status, by, reason)| {
            RecordBody::Status {
                person,
                status,
                by,
                reason,
            }
        }),
        (text(), text(), opt(), opt()).prop_map(|(person, stage, by, reason)| {
            RecordBody::Stage {
                person,
                stage,
                by,
                reason,
            }
        }),
        (text(), text()).prop_map(|(person, into)| RecordBody::Merge { person, into }),
        text().prop_map(|person| RecordBody::Erase { person }),
    ]
}

fn record() -> impl Strategy<Value = Record<String>> {
    (text(), any::<i64>(), body()).prop_map(|(id, at, body)| Record { id, at, body })
}

/// Compares floats by bits (a NaN amount must read back as the same NaN).
fn same(a: &Record<&str>, b: &Record<&str>) -> bool {
    let amount = |r: &Record<&str>| match r.body {
        RecordBody::Opportunity { amount, .. } => amount.map(f64::to_bits),
        _ => None,
    };
    format!("{a:?}") == format!("{b:?}") && amount(a) == amount(b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn every_record_reads_back_as_written(records in proptest::collection::vec(record(), 1..4)) {
        let mut bytes = Vec::new();
        for r in &records {
            r.write(&mut bytes);
        }
        let mut rest = &bytes[..];
        for written in &records {
            let (read, after) = Record::read(rest).unwrap();
            let written = Record {
                id: written.id.as_str(),
                at: written.at,
                body: borrowed(&written.body),
            };
            prop_assert!(same(&read, &written), "{read:?} != {written:?}");
            rest = after;
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn any_bytes_read_as_a_record_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Record::read(&bytes);
    }
}

/// The body with its strings borrowed.
fn borrowed(body: &RecordBody<String>) -> RecordBody<&str> {
    fn o(s: &Option<String>) -> Option<&str> {
        s.as_deref()
    }
    match body {
        RecordBody::Account { account, attrs } => RecordBody::Account { account, attrs },
        RecordBody::Person {
            person,
            account,
            attrs,
        } => RecordBody::Person {
            person,
            account: o(account),
            attrs,
        },
        RecordBody::PersonActivity {
            person,
            kind,
            attrs,
        } => RecordBody::PersonActivity {
            person,
            kind,
            attrs,
        },
        RecordBody::AccountActivity {
            account,
            kind,
            attrs,
        } => RecordBody::AccountActivity {
            account,
            kind,
            attrs,
        },
        RecordBody::Opportunity {
            opportunity,
            account,
            kind,
            state,
            stage,
            amount,
            contacts,
        } => RecordBody::Opportunity {
            opportunity,
            account: o(account),
            kind: *kind,
            state: *state,
            stage: o(stage),
            amount: *amount,
            contacts: contacts.clone(),
        },
        RecordBody::Status {
            person,
            status,
            by,
            reason,
        } => RecordBody::Status {
            person,
            status,
            by: o(by),
            reason: o(reason),
        },
        RecordBody::Stage {
            person,
            stage,
            by,
            reason,
        } => RecordBody::Stage {
            person,
            stage,
            by: o(by),
            reason: o(reason),
        },
        RecordBody::Merge { person, into } => RecordBody::Merge { person, into },
        RecordBody::Erase { person } => RecordBody::Erase { person },
    }
}
