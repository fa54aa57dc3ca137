//! Lead-to-account matching and person dedup in the store, on realistic messy data.

use super::*;
use waterfall_model::HISTORY_ONLY_TOML;
use waterfall_store::Store;

/// History-only's stages with matching and dedup switched on (no automation to distract).
pub(crate) fn matching_model(extra: &str) -> Model {
    let text = HISTORY_ONLY_TOML.replace(
        "[matching]\nenabled = false\nmerge_duplicates = false\n",
        &format!("[matching]\nenabled = true\nmerge_duplicates = true\n{extra}"),
    );
    assert_ne!(
        text, HISTORY_ONLY_TOML,
        "the shipped history-only model changed shape"
    );
    Model::from_toml(&text).unwrap()
}

fn accounts() -> Vec<Event> {
    vec![
        ev(
            "a1",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"acme","attrs":{"name":"ACME Incorporated","domain":"acme.com","employees":1200}"#,
        ),
        ev(
            "a2",
            "2025-01-01T00:00:01Z",
            r#""type":"account","account":"globex-us","attrs":{"name":"Globex Corporation","domain":"globex.com","employees":300}"#,
        ),
        ev(
            "a3",
            "2025-01-01T00:00:02Z",
            r#""type":"account","account":"globex-de","attrs":{"name":"Globex Deutschland GmbH","domain":"globex.com","employees":900}"#,
        ),
        // Renamed: the account was Facebook, is Meta now.
        ev(
            "a4",
            "2025-01-01T00:00:03Z",
            r#""type":"account","account":"meta","attrs":{"name":"Facebook, Inc.","domain":"fb.com"}"#,
        ),
        ev(
            "a5",
            "2025-06-01T00:00:00Z",
            r#""type":"account","account":"meta","attrs":{"name":"Meta Platforms, Inc.","domains":["meta.com","fb.com"]}"#,
        ),
        // Two explicit people at globex-de: it has the most people.
        ev(
            "a6",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"de1","account":"globex-de","attrs":{"email":"hans@globex.com"}"#,
        ),
        ev(
            "a7",
            "2025-01-02T00:00:01Z",
            r#""type":"person","person":"de2","account":"globex-de","attrs":{"email":"grete@globex.com"}"#,
        ),
    ]
}

fn person(store: &Store, id: &str) -> waterfall_store::PersonRow {
    store
        .person(id)
        .unwrap()
        .unwrap_or_else(|| panic!("no person {id}"))
}

#[test]
fn free_mail_person_is_matched_by_company_name_not_domain() {
    let model = matching_model("");
    let mut events = accounts();
    events.push(ev("p1", "2025-02-01T00:00:00Z", r#""type":"person","person":"jo","attrs":{"email":"jo.smith@gmail.com","company":"Acme, Inc."}"#));
    events.push(ev(
        "p2",
        "2025-02-01T00:00:01Z",
        r#""type":"person","person":"al","attrs":{"email":"al@gmail.com"}"#,
    ));
    let s = ingest_all(&model, &[&events]);
    let jo = person(&s, "jo");
    assert_eq!(jo.account.as_deref(), Some("acme"));
    assert_eq!(jo.partition, "acme");
    let m = s.person_match("jo").unwrap().unwrap();
    assert_eq!(m.method, "company_exact");
    assert!(m.confidence >= 0.85);
    assert!(
        m.explanation.contains("gmail.com is a free-mail domain"),
        "{}",
        m.explanation
    );
    assert!(
        m.explanation.contains("ACME Incorporated"),
        "{}",
        m.explanation
    );
    // A free-mail address and no company: nothing to go on.
    let al = person(&s, "al");
    assert_eq!(al.account, None);
    assert_eq!(al.partition, "~p:al");
    assert!(s.person_match("al").unwrap().is_none());
}

#[test]
fn work_email_matches_by_domain_and_the_person_joins_the_buying_group() {
    let model = matching_model("");
    let mut events = accounts();
    events.push(ev(
        "p1",
        "2025-02-01T00:00:00Z",
        r#""type":"person","person":"wile","attrs":{"email":"Wile.E+demo@ACME.com"}"#,
    ));
    events.push(ev(
        "p2",
        "2025-02-02T00:00:00Z",
        r#""type":"stage","person":"wile","stage":"MQL""#,
    ));
    let s = ingest_all(&model, &[&events]);
    let p = person(&s, "wile");
    assert_eq!(
        (p.account.as_deref(), p.partition.as_str(), p.stage.as_str()),
        (Some("acme"), "acme", "MQL")
    );
    assert_eq!(s.person_match("wile").unwrap().unwrap().method, "domain");
    let people: Vec<String> = s
        .people_of_account("acme")
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(people, vec!["wile".to_string()]);
}

#[test]
fn subsidiaries_sharing_a_domain_follow_the_tie_break_rule() {
    let mut events = accounts();
    events.push(ev(
        "p1",
        "2025-02-01T00:00:00Z",
        r#""type":"person","person":"x","attrs":{"email":"x@globex.com"}"#,
    ));
    // most_people: globex-de has two explicit people, globex-us none.
    let s = ingest_all(&matching_model(""), &[&events]);
    assert_eq!(person(&s, "x").account.as_deref(), Some("globex-de"));
    let m = s.person_match("x").unwrap().unwrap();
    assert!(m.explanation.contains("most_people"), "{}", m.explanation);
    // oldest: globex-us was seen first.
    let s = ingest_all(&matching_model("tie_break = \"oldest\"\n"), &[&events]);
    assert_eq!(person(&s, "x").account.as_deref(), Some("globex-us"));
    // The company the person named beats the rule.
    events.push(ev(
        "p2",
        "2025-02-01T00:00:01Z",
        r#""type":"person","person":"y","attrs":{"email":"y@globex.com","company":"Globex Corp."}"#,
    ));
    let s = ingest_all(&matching_model(""), &[&events]);
    assert_eq!(person(&s, "y").account.as_deref(), Some("globex-us"));
}

#[test]
fn a_batch_without_identity_events_keeps_the_decisions_and_moves_no_one() {
    let model = matching_model("");
    let mut events = accounts();
    events.push(ev(
        "p1",
        "2025-02-01T00:00:00Z",
        r#""type":"person","person":"jo","attrs":{"email":"jo@acme.com"}"#,
    ));
    events.push(ev(
        "p2",
        "2025-02-02T00:00:00Z",
        r#""type":"person","person":"jo2","attrs":{"email":"JO@acme.com"}"#,
    ));
    let later = vec![
        ev(
            "s1",
            "2025-03-01T00:00:00Z",
            r#""type":"stage","person":"jo","stage":"MQL""#,
        ),
        ev(
            "s2",
            "2025-03-02T00:00:00Z",
            r#""type":"activity","person":"jo2","kind":"web_visit""#,
        ),
        ev(
            "s3",
            "2025-03-03T00:00:00Z",
            r#""type":"activity","person":"stranger","kind":"web_visit""#,
        ),
    ];
    let mut s = ingest_all(&model, &[&events]);
    s.ingest(&model, later.clone(), HORIZON).unwrap();
    assert_eq!(person(&s, "jo").account.as_deref(), Some("acme"));
    assert_eq!(person(&s, "jo2").merged_into.as_deref(), Some("jo"));
    let all: Vec<Event> = events.iter().chain(&later).cloned().collect();
    let once = ingest_all(&model, &[&all]);
    assert_eq!(history(&s), history(&once));
    assert_eq!(decisions(&s), decisions(&once));
    // A later identity event is decided: the stranger's email now matches an account.
    s.ingest(
        &model,
        vec![ev(
            "p3",
            "2025-04-01T00:00:00Z",
            r#""type":"person","person":"stranger","attrs":{"email":"x@globex.com"}"#,
        )],
        HORIZON,
    )
    .unwrap();
    assert_eq!(person(&s, "stranger").account.as_deref(), Some("globex-de"));
}

#[test]
fn a_replay_under_another_policy_decides_again_and_under_the_same_one_keeps_the_decisions() {
    let mut events = accounts();
    events.push(ev(
        "p1",
        "2025-02-01T00:00:00Z",
        r#""type":"person","person":"x","attrs":{"email":"x@globex.com"}"#,
    ));
    let (most, oldest) = (
        matching_model(""),
        matching_model("tie_break = \"oldest\"\n"),
    );
    let mut s = ingest_all(&most, &[&events]);
    assert_eq!(person(&s, "x").account.as_deref(), Some("globex-de"));
    s.replay(&oldest, HORIZON).unwrap();
    assert_eq!(person(&s, "x").account.as_deref(), Some("globex-us"));
    assert_eq!(history(&s), history(&ingest_all(&oldest, &[&events])));
    s.replay(&oldest, HORIZON).unwrap();
    assert_eq!(person(&s, "x").account.as_deref(), Some("globex-us"));
    s.replay(&most, HORIZON).unwrap();
    assert_eq!(person(&s, "x").account.as_deref(), Some("globex-de"));
    assert_eq!(history(&s), history(&ingest_all(&most, &[&events])));
}

#[test]
fn renamed_company_is_matched_by_its_old_name() {
    let model = matching_model("");
    let mut events = accounts();
    events.push(ev("p1", "2025-09-01T00:00:00Z", r#""type":"person","person":"mark","attrs":{"email":"mark@hotmail.com","company":"facebook"}"#));
    let s = ingest_all(&model, &[&events]);
    assert_eq!(person(&s, "mark").account.as_deref(), Some("meta"));
    let m = s.person_match("mark").unwrap().unwrap();
    assert!(m.explanation.contains("former name"), "{}", m.explanation);
}

#[test]
fn acme_inc_and_acme_incorporated_are_one_account() {
    let model = matching_model("");
    let events = vec![
        ev(
            "a",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"acme","attrs":{"name":"Acme, Inc."}"#,
        ),
        ev(
            "p",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"p","attrs":{"company":"ACME Incorporated"}"#,
        ),
    ];
    let s = ingest_all(&model, &[&events]);
    assert_eq!(person(&s, "p").account.as_deref(), Some("acme"));
}

#[test]
fn duplicates_from_two_sources_are_merged_keeping_both_histories() {
    let model = matching_model("");
    let mut events = accounts();
    // A webinar list and, later, the CRM: same human, different case and plus-addressing.
    events.push(ev("w1", "2025-02-01T00:00:00Z", r#""type":"person","person":"webinar-17","attrs":{"email":"Jo.Smith+webinar@Acme.com","source":"webinar"}"#));
    events.push(ev(
        "w2",
        "2025-02-02T00:00:00Z",
        r#""type":"stage","person":"webinar-17","stage":"MQL""#,
    ));
    events.push(ev("c1", "2025-03-01T00:00:00Z", r#""type":"person","person":"crm-003","account":"acme","attrs":{"email":"jo.smith@acme.com","title":"VP Marketing"}"#));
    events.push(ev(
        "c2",
        "2025-03-05T00:00:00Z",
        r#""type":"status","person":"crm-003","status":"Working""#,
    ));
    // Arrival order must not matter: the CRM record first, the webinar list later.
    let mut reversed = events.clone();
    reversed.reverse();
    for batch in [events, reversed] {
        let s = ingest_all(&model, &[&batch]);
        let survivor = person(&s, "webinar-17");
        assert_eq!(survivor.merged_into, None);
        assert_eq!(survivor.account.as_deref(), Some("acme"));
        assert_eq!(survivor.status.as_deref(), Some("Working"));
        assert_eq!(survivor.attrs["title"], "VP Marketing");
        let dup = person(&s, "crm-003");
        assert_eq!(dup.merged_into.as_deref(), Some("webinar-17"));
        // Both histories: the MQL from the webinar record and the status from the CRM.
        let t = s.transitions_of("webinar-17").unwrap();
        assert!(
            t.iter()
                .any(|t| t.to == "MQL" && t.event.as_deref() == Some("w2")),
            "{t:?}"
        );
        assert!(
            t.iter()
                .any(|t| t.to == "Working" && t.event.as_deref() == Some("c2")),
            "{t:?}"
        );
        // One person, entered once.
        assert_eq!(t.iter().filter(|t| t.to == "MAL").count(), 1);
        // The duplicate's own events are still in the log.
        let home = person(&s, "crm-003").partition;
        assert!(s.event(&home, "c1").unwrap().unwrap().event.is_some());
        let d = s.person_duplicates("webinar-17").unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].person.as_str(), d[0].email.as_str()),
            ("crm-003", "jo.smith@acme.com")
        );
    }
}

#[test]
fn a_survivor_whose_duplicate_leaves_returns_to_its_own_account() {
    // The duplicate named the later account, so the pair lived there; once its email
    // changes it is no duplicate, and the survivor goes back to the account it named. The
    // later batch checks only the groups it changed: the one the duplicate left is one.
    let model = matching_model("");
    let first = vec![
        ev(
            "r1",
            "2025-01-01T00:00:00Z",
            r#""type":"person","person":"r","account":"acme","attrs":{"email":"jo@acme.com"}"#,
        ),
        ev(
            "m1",
            "2025-02-01T00:00:00Z",
            r#""type":"person","person":"m","account":"globex-us","attrs":{"email":"jo@acme.com"}"#,
        ),
    ];
    let later = vec![ev(
        "m2",
        "2025-03-01T00:00:00Z",
        r#""type":"person","person":"m","attrs":{"email":"max@globex.com"}"#,
    )];
    assert_eq!(
        person(&ingest_all(&model, &[&first]), "r").partition,
        "globex-us"
    );
    let (batched, once) = later_batch_and_one_batch(&model, first, later);
    assert_eq!(person(&once, "r").partition, "acme");
    assert_eq!(person(&batched, "r").partition, "acme");
}

/// Ingests `first`, then `later` in a batch of its own, and all of it in one batch; checks
/// that both end with the same decisions, and returns them (batched, once).
fn later_batch_and_one_batch(
    model: &Model,
    first: Vec<Event>,
    later: Vec<Event>,
) -> (Store, Store) {
    let mut batched = ingest_all(model, &[&first]);
    batched.ingest(model, later.clone(), HORIZON).unwrap();
    let all: Vec<Event> = first.into_iter().chain(later).collect();
    let once = ingest_all(model, &[&all]);
    assert_eq!(decisions(&once), decisions(&batched));
    (batched, once)
}

#[test]
fn a_duplicate_merged_away_in_a_later_batch_ends_where_one_batch_puts_it() {
    let model = matching_model("");
    let first = vec![
        ev(
            "r1",
            "2025-01-01T00:00:00Z",
            r#""type":"person","person":"r","account":"acme","attrs":{"email":"jo@acme.com"}"#,
        ),
        ev(
            "x1",
            "2025-02-01T00:00:00Z",
            r#""type":"person","person":"x","account":"globex-us","attrs":{"email":"jo@acme.com"}"#,
        ),
        ev(
            "z1",
            "2025-02-02T00:00:00Z",
            r#""type":"person","person":"z","attrs":{"email":"zed@initech.com"}"#,
        ),
    ];
    let later = vec![ev(
        "g1",
        "2025-03-01T00:00:00Z",
        r#""type":"merge","person":"x","into":"z""#,
    )];
    let (batched, once) = later_batch_and_one_batch(&model, first, later);
    for id in ["r", "x", "z"] {
        assert_eq!(
            person(&batched, id).partition,
            person(&once, id).partition,
            "{id}"
        );
    }
}

#[test]
fn a_conversion_never_creates_a_duplicate_person() {
    // A CRM lead converted into a contact arrives as a new id with the same email.
    let model = matching_model("");
    let events = [
        ev(
            "a",
            "2025-01-01T00:00:00Z",
            r#""type":"account","account":"acme","attrs":{"name":"Acme","domain":"acme.com"}"#,
        ),
        ev(
            "l",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"lead-1","attrs":{"email":"jo@acme.com"}"#,
        ),
        ev(
            "c",
            "2025-02-02T00:00:00Z",
            r#""type":"person","person":"contact-9","account":"acme","attrs":{"email":"JO@acme.com"}"#,
        ),
    ];
    let s = ingest_all(&model, &[&events[..2], &events[2..]]);
    let live: Vec<String> = s
        .people_of_account("acme")
        .unwrap()
        .into_iter()
        .filter(|p| p.merged_into.is_none())
        .map(|p| p.id)
        .collect();
    assert_eq!(live, vec!["lead-1".to_string()]);
    // The account named by the contact is explicit now: no match needed any more.
    assert!(s.person_match("lead-1").unwrap().is_none());
}

#[test]
fn an_explicit_account_beats_a_match_whenever_it_arrives() {
    let model = matching_model("");
    let mut events = accounts();
    events.push(ev(
        "p1",
        "2025-02-01T00:00:00Z",
        r#""type":"person","person":"jo","attrs":{"email":"jo@acme.com"}"#,
    ));
    let s0 = ingest_all(&model, &[&events]);
    assert_eq!(person(&s0, "jo").account.as_deref(), Some("acme"));
    // Later, the CRM says jo works at globex-us (an earlier instant, arriving late, too).
    let explicit = ev(
        "p2",
        "2025-01-15T00:00:00Z",
        r#""type":"person","person":"jo","account":"globex-us""#,
    );
    let s = ingest_all(&model, &[&events, std::slice::from_ref(&explicit)]);
    let jo = person(&s, "jo");
    assert_eq!(
        (jo.account.as_deref(), jo.partition.as_str()),
        (Some("globex-us"), "globex-us")
    );
    assert!(s.person_match("jo").unwrap().is_none());
    assert!(s.people_of_account("acme").unwrap().is_empty());
}

#[test]
fn a_person_is_matched_when_their_account_arrives_later() {
    let model = matching_model("");
    let people = vec![
        ev(
            "p1",
            "2025-02-01T00:00:00Z",
            r#""type":"person","person":"jo","attrs":{"email":"jo@initech.com"}"#,
        ),
        ev(
            "p2",
            "2025-02-03T00:00:00Z",
            r#""type":"stage","person":"jo","stage":"MQL""#,
        ),
    ];
    let account = vec![ev(
        "a",
        "2025-03-01T00:00:00Z",
        r#""type":"account","account":"initech","attrs":{"name":"Initech","domain":"initech.com"}"#,
    )];
    let s = ingest_all(&model, &[&people]);
    assert_eq!(person(&s, "jo").partition, "~p:jo");
    let s = ingest_all(&model, &[&people, &account]);
    let jo = person(&s, "jo");
    assert_eq!(
        (jo.account.as_deref(), jo.stage.as_str()),
        (Some("initech"), "MQL")
    );
    // The emptied person-partition left nothing behind.
    assert_eq!(s.history().unwrap().people.len(), 1);
}

#[test]
fn replay_under_history_only_undoes_matches_and_merges() {
    let model = matching_model("");
    let mut events = accounts();
    events.push(ev(
        "p1",
        "2025-02-01T00:00:00Z",
        r#""type":"person","person":"jo","attrs":{"email":"jo@acme.com"}"#,
    ));
    events.push(ev(
        "p2",
        "2025-02-02T00:00:00Z",
        r#""type":"person","person":"jo2","attrs":{"email":"JO@acme.com"}"#,
    ));
    let mut s = ingest_all(&model, &[&events]);
    assert_eq!(person(&s, "jo2").merged_into.as_deref(), Some("jo"));
    s.replay(&Model::history_only(), HORIZON).unwrap();
    let plain = ingest_all(&Model::history_only(), &[&events]);
    assert_eq!(history(&s), history(&plain));
    assert!(s.person_match("jo").unwrap().is_none());
    // And back again.
    s.replay(&model, HORIZON).unwrap();
    assert_eq!(history(&s), history(&ingest_all(&model, &[&events])));
}

#[test]
fn the_default_model_matches_and_merges() {
    let model = Model::demand_waterfall();
    let mut events = accounts();
    events.push(ev(
        "p1",
        "2025-02-01T00:00:00Z",
        r#""type":"person","person":"jo","attrs":{"email":"jo@acme.com"}"#,
    ));
    events.push(ev(
        "p2",
        "2025-02-02T00:00:00Z",
        r#""type":"person","person":"jo2","attrs":{"email":"jo+x@acme.com"}"#,
    ));
    let s = ingest_all(&model, &[&events]);
    assert_eq!(person(&s, "jo").account.as_deref(), Some("acme"));
    assert_eq!(person(&s, "jo2").merged_into.as_deref(), Some("jo"));
}

const NAMES: [&str; 5] = [
    "Acme, Inc.",
    "ACME Incorporated",
    "Globex GmbH",
    "Initech",
    "Initech Software",
];
const DOMAINS: [&str; 3] = ["acme.com", "globex.com", "initech.com"];
const EMAILS: [&str; 8] = [
    "jo@acme.com",
    "JO+news@Acme.com",
    "al@globex.com",
    "Al@GLOBEX.com",
    "kim@gmail.com",
    "k.i.m+x@googlemail.com",
    "sam@initech.com",
    "pat@unknown.io",
];
const COMPANIES: [&str; 5] = ["acme corp", "Globex", "Initech Sofware", "Umbrella", ""];

/// Messy people and accounts: shared emails in several spellings, free-mail, renamed and
/// domain-sharing accounts, explicit accounts now and then. Every instant is distinct.
fn messy_strategy() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0usize..6, 0u8..6, 0usize..8, 0usize..5, 1i64..300), 1..40).prop_map(
        |actions| {
            let mut out = Vec::new();
            // As a CRM merges: a record merged away is gone, so each person is merged at
            // most once, and into someone with a smaller number (no cycles).
            let mut merged = [false; 6];
            for (i, (p, kind, a, b, gap)) in actions.into_iter().enumerate() {
                let at = Timestamp((1_735_689_600 + (i as i64 * 400 + gap) * 3600) * 1_000_000);
                let person = format!("p{p}");
                let line = match kind {
                    0 | 1 => {
                        let mut attrs = serde_json::json!({"email": EMAILS[a]});
                        if !COMPANIES[b].is_empty() {
                            attrs["company"] = COMPANIES[b].into();
                        }
                        let account = (kind == 1 && b == 0).then(|| format!("a{}", a % 3));
                        serde_json::json!({"type": "person", "person": person, "account": account, "attrs": attrs})
                    }
                    2 => serde_json::json!({"type": "stage", "person": person, "stage": STAGES[a % 6]}),
                    5 if a % p.max(1) < p && !merged[p] => {
                        merged[p] = true;
                        serde_json::json!({"type": "merge", "person": person, "into": format!("p{}", a % p.max(1))})
                    }
                    5 => serde_json::json!({"type": "stage", "person": person, "stage": STAGES[b]}),
                    // A deal naming the person as a contact: people with no account of their
                    // own live with the first one, unless matching places them.
                    4 if b % 2 == 0 => serde_json::json!({
                        "type": "opportunity",
                        "opportunity": format!("o{}", a % 2),
                        "account": format!("a{}", (a + b) % 3),
                        "state": (["open", "won", "lost"][a % 3]),
                        "contacts": [{"person": person, "primary": true}]
                    }),
                    _ => serde_json::json!({
                        "type": "account",
                        "account": format!("a{}", b % 3),
                        "attrs": {"name": NAMES[a % 5], "domain": DOMAINS[(a + b) % 3], "employees": a * 100}
                    }),
                };
                let mut line = line;
                if line.get("account").is_some_and(|v| v.is_null()) {
                    line.as_object_mut().unwrap().remove("account");
                }
                line["id"] = format!("e{i}").into();
                line["at"] = at.to_string().into();
                out.push(waterfall_core::parse_line(&line.to_string()).unwrap());
            }
            out
        },
    )
}

/// History plus every matching and dedup decision.
fn decisions(s: &Store) -> (Vec<String>, Vec<Change>, Vec<String>) {
    let mut d = Vec::new();
    for p in 0..6 {
        let id = format!("p{p}");
        if let Some(m) = s.person_match(&id).unwrap() {
            d.push(format!(
                "{id} {} {} {:.4} {}",
                m.account, m.method, m.confidence, m.explanation
            ));
        }
        for x in s.person_duplicates(&id).unwrap() {
            d.push(format!("{} -> {} ({})", x.person, x.survivor, x.email));
        }
    }
    d.sort();
    d.dedup();
    let (people, ts) = history(s);
    (people, ts, d)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn matching_and_dedup_do_not_depend_on_arrival_order(events in messy_strategy(), seed in any::<u64>()) {
        let model = matching_model("");
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| e.at);
        let shuffled = shuffled(&events, seed);
        let a = ingest_all(&model, &[&sorted]);
        let b = ingest_all(&model, &[&shuffled]);
        prop_assert_eq!(decisions(&a), decisions(&b));
    }

    #[test]
    fn matching_and_dedup_do_not_depend_on_batching_or_replay(events in messy_strategy(), cuts in prop::collection::vec(0usize..40, 0..5)) {
        let model = matching_model("");
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
        cuts.sort();
        let mut batches: Vec<&[Event]> = Vec::new();
        let mut start = 0;
        for c in cuts.into_iter().chain([events.len()]) {
            batches.push(&events[start..c]);
            start = c;
        }
        let once = ingest_all(&model, &[&events]);
        let mut chunked = ingest_all(&model, &batches);
        prop_assert_eq!(decisions(&once), decisions(&chunked));
        chunked.replay(&model, HORIZON).unwrap();
        prop_assert_eq!(decisions(&once), decisions(&chunked));
    }

    #[test]
    fn matching_and_dedup_agree_when_every_event_is_a_batch(events in messy_strategy()) {
        // Each batch after the first decides from the stored decisions, checking only the
        // groups it changed: it must end where deciding everything from the facts does.
        let model = matching_model("");
        let once = ingest_all(&model, &[&events]);
        let batches: Vec<&[Event]> = events.chunks(1).collect();
        let mut single = ingest_all(&model, &batches);
        prop_assert_eq!(decisions(&once), decisions(&single));
        single.replay(&model, HORIZON).unwrap();
        prop_assert_eq!(decisions(&once), decisions(&single));
    }

    #[test]
    fn a_replay_that_matches_sees_events_stored_without_matching(events in messy_strategy(), cut in 0usize..40) {
        // Part of the log arrives under a model that does not match (its events are not
        // observed): a replay under one that does must still see them all.
        let model = matching_model("");
        let cut = cut.min(events.len());
        let once = ingest_all(&model, &[&events]);
        let mut mixed = ingest_all(&model, &[&events[..cut]]);
        mixed.ingest(&Model::history_only(), events[cut..].to_vec(), HORIZON).unwrap();
        mixed.replay(&model, HORIZON).unwrap();
        prop_assert_eq!(decisions(&once), decisions(&mixed));
        // And a replay after that, with nothing new, reuses the facts and agrees.
        mixed.replay(&model, HORIZON).unwrap();
        prop_assert_eq!(decisions(&once), decisions(&mixed));
    }
}

#[test]
fn erasing_the_survivor_leaves_the_duplicate_on_its_own() {
    let model = matching_model("");
    let events = [
        ev(
            "1",
            "2025-01-01T00:00:00Z",
            r#""type":"person","person":"old","attrs":{"email":"jo@acme.com"}"#,
        ),
        ev(
            "2",
            "2025-01-02T00:00:00Z",
            r#""type":"person","person":"new","attrs":{"email":"JO@acme.com"}"#,
        ),
    ];
    let mut s = ingest_all(&model, &[&events]);
    assert_eq!(person(&s, "new").merged_into.as_deref(), Some("old"));
    s.ingest(
        &model,
        vec![ev(
            "3",
            "2025-03-01T00:00:00Z",
            r#""type":"erase","person":"old""#,
        )],
        HORIZON,
    )
    .unwrap();
    assert!(s.person("old").unwrap().is_none());
    let new = person(&s, "new");
    assert_eq!((new.merged_into, new.partition.as_str()), (None, "~p:new"));
    assert!(s.person_duplicates("new").unwrap().is_empty());
    let dump = format!("{:?}", s.history().unwrap());
    assert!(!dump.contains("\"old\""), "{dump}");
}
