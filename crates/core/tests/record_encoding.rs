//! The stored record format: whatever `Record::write` writes, `Record::read` reads back the
//! same, one record after another; and no bytes make it panic.

use proptest::prelude::*;
use waterfall_core::{
    OpportunityContact, OpportunityKind, OpportunityState, Record, RecordBody, RecordRoutes,
    RouteKey,
};

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn every_record_reads_back_as_written(records in proptest::collection::vec(record(), 1..4)) {
        // Read back and written again, each record gives the very bytes it was written as
        // (floats included, bit for bit), one after another in a stream.
        let mut bytes = Vec::new();
        let mut alone = Vec::new();
        for r in &records {
            r.write(&mut bytes);
            let mut one = Vec::new();
            r.write(&mut one);
            alone.push(one);
        }
        let mut rest = &bytes[..];
        for one in &alone {
            let (read, after) = Record::read(rest).unwrap();
            let mut again = Vec::new();
            read.write(&mut again);
            prop_assert_eq!(&again, one);
            rest = after;
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn noted_routes_agree_with_reading_each_route(records in proptest::collection::vec(record(), 0..6)) {
        // Noted while the stream is written, the routes are what reading the records gives
        // (an opportunity's is left to the record).
        let mut bytes = Vec::new();
        let mut routes = RecordRoutes::default();
        for r in &records {
            let before = bytes.len();
            r.write(&mut bytes);
            routes.push(r, bytes.len() - before);
        }
        prop_assert_eq!(routes.len(), records.len());
        let mut rest = &bytes[..];
        for noted in routes.iter() {
            let (at, key, after) = Record::read_route(rest).unwrap();
            prop_assert_eq!(noted.at, at);
            prop_assert_eq!(noted.len, rest.len() - after.len());
            match noted.key {
                Some(noted) => prop_assert_eq!(noted, key),
                None => {
                    let opportunity = matches!(key, RouteKey::Opportunity { .. });
                    prop_assert!(opportunity);
                }
            }
            rest = after;
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn reading_the_route_agrees_with_reading_the_record(records in proptest::collection::vec(record(), 1..4)) {
        let mut bytes = Vec::new();
        for r in &records {
            r.write(&mut bytes);
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (record, after) = Record::read(rest).unwrap();
            let (at, key, after_route) = Record::read_route(rest).unwrap();
            prop_assert_eq!((at, key), (record.at, record.route_key()));
            prop_assert_eq!(after_route.len(), after.len());
            rest = after;
        }
    }

    #[test]
    fn the_hand_written_codec_is_postcards(records in proptest::collection::vec(record(), 1..4)) {
        // Records are written and read without serde; the serde derive defines the format
        // that stored logs already hold. Both directions must agree with it byte for byte.
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for r in &records {
            r.write(&mut bytes);
            expected.extend(postcard::to_allocvec(r).unwrap());
        }
        prop_assert_eq!(&bytes, &expected);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (ours, after) = Record::read(rest).unwrap();
            let (theirs, after_theirs) = postcard::take_from_bytes::<Record<&str>>(rest).unwrap();
            prop_assert_eq!(after.len(), after_theirs.len());
            // Compared as written: NaN amounts are not equal to themselves.
            let (mut a, mut b) = (Vec::new(), Vec::new());
            ours.write(&mut a);
            theirs.write(&mut b);
            prop_assert_eq!(a, b);
            rest = after;
        }
    }

    #[test]
    fn damaged_records_are_refused_as_postcard_refuses_them(
        r in record(),
        at in any::<usize>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        // A record with one byte changed, or cut short there: both codecs accept it (and
        // stop at the same place) or both refuse it.
        let mut bytes = Vec::new();
        r.write(&mut bytes);
        let at = at % bytes.len();
        if cut {
            bytes.truncate(at);
        } else {
            bytes[at] = byte;
        }
        let ours = Record::read(&bytes).map(|(_, rest)| rest.len());
        let theirs = postcard::take_from_bytes::<Record<&str>>(&bytes).map(|(_, rest)| rest.len());
        prop_assert_eq!(ours.ok(), theirs.ok());
    }

    #[test]
    fn any_bytes_read_as_a_record_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Record::read(&bytes);
        let _ = Record::read_route(&bytes);
    }
}
