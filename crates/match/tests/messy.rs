//! Matching on realistic messy data: free-mail, subsidiaries sharing a domain, renamed
//! companies, legal forms and typos.

use waterfall_match::{
    match_person, AccountIndex, AccountRecord, MatchPolicy, Method, PersonFacts, TieBreak,
};

fn acc(
    id: &str,
    names: &[&str],
    domains: &[&str],
    people: u64,
    first_seen: i64,
    employees: Option<f64>,
) -> AccountRecord {
    AccountRecord {
        id: id.into(),
        names: names.iter().map(|s| s.to_string()).collect(),
        domains: domains.iter().map(|s| s.to_string()).collect(),
        people,
        first_seen,
        employees,
    }
}

fn accounts() -> Vec<AccountRecord> {
    vec![
        acc(
            "acme",
            &["ACME Incorporated"],
            &["https://www.acme.com/"],
            3,
            10,
            Some(1200.0),
        ),
        // Subsidiaries sharing one domain.
        acc(
            "globex-us",
            &["Globex Corporation"],
            &["globex.com"],
            5,
            30,
            Some(300.0),
        ),
        acc(
            "globex-de",
            &["Globex GmbH"],
            &["globex.com"],
            2,
            20,
            Some(900.0),
        ),
        acc(
            "globex-robotics",
            &["Globex Robotics"],
            &["globex.com"],
            1,
            40,
            Some(50.0),
        ),
        // Renamed: Facebook → Meta.
        acc(
            "meta",
            &["Meta Platforms, Inc.", "Facebook, Inc."],
            &["meta.com"],
            4,
            5,
            None,
        ),
        acc("initech", &["Initech Software Solutions"], &[], 0, 50, None),
    ]
}

/// Matches one person under `policy` and returns (account, method) or `None`.
fn check(
    policy: &MatchPolicy,
    email: Option<&str>,
    company: Option<&str>,
    want: Option<(&str, Method)>,
) {
    let index = AccountIndex::new(accounts());
    let got = match_person(&index, &PersonFacts { email, company }, policy);
    let got_short = got.as_ref().map(|m| (m.account.as_str(), m.method));
    assert_eq!(got_short, want, "{email:?} / {company:?}: {got:#?}");
    if let Some(m) = got {
        assert!(m.confidence >= policy.min_confidence, "{m:?}");
        assert!(!m.explanation.is_empty());
    }
}

#[test]
fn work_email_matches_by_domain() {
    let p = MatchPolicy::enabled();
    check(
        &p,
        Some("Jo@ACME.com"),
        None,
        Some(("acme", Method::Domain)),
    );
    check(
        &p,
        Some("jo@eu.acme.com"),
        None,
        Some(("acme", Method::Domain)),
    );
    check(&p, Some("jo@unknown.io"), None, None);
}

#[test]
fn free_mail_is_not_a_domain_match_but_the_company_name_is() {
    let p = MatchPolicy::enabled();
    check(&p, Some("jo.smith@gmail.com"), None, None);
    check(
        &p,
        Some("jo@gmx.de"),
        Some("Acme, Inc."),
        Some(("acme", Method::CompanyExact)),
    );
    let m = match_person(
        &AccountIndex::new(accounts()),
        &PersonFacts {
            email: Some("jo@gmail.com"),
            company: Some("Acme, Inc."),
        },
        &p,
    )
    .unwrap();
    assert!(
        m.explanation.contains("gmail.com is a free-mail domain"),
        "{}",
        m.explanation
    );
    assert!(
        m.explanation.contains("normalises to \"acme\""),
        "{}",
        m.explanation
    );
}

#[test]
fn acme_inc_is_acme_incorporated() {
    let p = MatchPolicy::enabled();
    for name in [
        "Acme, Inc.",
        "ACME Incorporated",
        "acme corp",
        "Acme Inc",
        "ACME",
    ] {
        check(&p, None, Some(name), Some(("acme", Method::CompanyExact)));
    }
}

#[test]
fn subsidiaries_sharing_a_domain_follow_the_company_then_the_tie_break() {
    let mut p = MatchPolicy::enabled();
    // The company name picks the subsidiary when it clearly names one.
    check(
        &p,
        Some("a@globex.com"),
        Some("Globex Robotics"),
        Some(("globex-robotics", Method::Domain)),
    );
    // Otherwise the model's rule decides.
    check(
        &p,
        Some("a@globex.com"),
        None,
        Some(("globex-us", Method::Domain)),
    );
    p.tie_break = TieBreak::Oldest;
    check(
        &p,
        Some("a@globex.com"),
        None,
        Some(("globex-de", Method::Domain)),
    );
    p.tie_break = TieBreak::LargestEmployees;
    check(
        &p,
        Some("a@globex.com"),
        Some("Globex"),
        Some(("globex-de", Method::Domain)),
    );
    let m = match_person(
        &AccountIndex::new(accounts()),
        &PersonFacts {
            email: Some("a@globex.com"),
            company: None,
        },
        &p,
    )
    .unwrap();
    assert!(
        m.explanation.contains("shared by 3 accounts"),
        "{}",
        m.explanation
    );
    assert!(
        m.explanation.contains("largest_employees"),
        "{}",
        m.explanation
    );
}

#[test]
fn renamed_company_matches_by_its_old_name() {
    let p = MatchPolicy::enabled();
    check(
        &p,
        Some("zuck@gmail.com"),
        Some("Facebook"),
        Some(("meta", Method::CompanyExact)),
    );
    let m = match_person(
        &AccountIndex::new(accounts()),
        &PersonFacts {
            email: None,
            company: Some("Facebook Inc"),
        },
        &p,
    )
    .unwrap();
    assert!(m.explanation.contains("former name"), "{}", m.explanation);
    check(
        &p,
        None,
        Some("Meta Platforms"),
        Some(("meta", Method::CompanyExact)),
    );
}

#[test]
fn fuzzy_names_match_above_the_minimum_only() {
    let p = MatchPolicy::enabled();
    check(
        &p,
        None,
        Some("Initech Sofware Solutions"),
        Some(("initech", Method::CompanyFuzzy)),
    );
    check(
        &p,
        None,
        Some("Solutions Initech Software"),
        Some(("initech", Method::CompanyFuzzy)),
    );
    check(&p, None, Some("Initrode"), None);
    check(&p, None, Some("Acne"), None);
    let strict = MatchPolicy {
        min_confidence: 0.99,
        ..MatchPolicy::enabled()
    };
    check(&strict, None, Some("Initech Sofware Solutions"), None);
}

#[test]
fn disabled_policy_matches_nothing() {
    check(
        &MatchPolicy::default(),
        Some("jo@acme.com"),
        Some("Acme"),
        None,
    );
    let no_domain = MatchPolicy {
        by_domain: false,
        ..MatchPolicy::enabled()
    };
    check(&no_domain, Some("jo@acme.com"), None, None);
}

#[test]
fn order_of_accounts_never_changes_the_answer() {
    let p = MatchPolicy::enabled();
    let mut rev = accounts();
    rev.reverse();
    let a = AccountIndex::new(accounts());
    let b = AccountIndex::new(rev);
    for (email, company) in [
        (Some("x@globex.com"), None),
        (Some("x@globex.com"), Some("Globex")),
        (None, Some("Globex")),
        (Some("x@gmail.com"), Some("facebook")),
    ] {
        let f = PersonFacts { email, company };
        assert_eq!(match_person(&a, &f, &p), match_person(&b, &f, &p));
    }
}
