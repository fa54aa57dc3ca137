//! The direct evaluator gives the interpreter's answer, error messages included: every
//! condition of the shipped model and a set of edge cases, over generated contexts whose
//! attributes have every JSON type (or are missing or null).

use proptest::prelude::*;
use serde_json::{json, Value as Json};
use waterfall_model::*;

/// Conditions beyond the shipped model's: every operator the direct evaluator compiles, mixed
/// numeric types, lists compared with lists, `? :`, and shapes it leaves to the interpreter.
const EDGE_CASES: &[&str] = &[
    r#"person.seniority == "vp" || account.employees > 100"#,
    r#"!person.is_competitor"#,
    r#"person.is_competitor && account.icp_tier == 1"#,
    r#"account.icp_tier == 1u || account.icp_tier != 2.0"#,
    r#"person.title < "M" && person.title >= "C""#,
    r#"person.stage == "MQL" ? account.employees >= 10.5 : person.fit > 3"#,
    r#"activity.kind == "web_visit" || opportunity.amount >= 1000.0"#,
    r#"activity.url in ["a", "b"] && opportunity.kind == "expansion""#,
    r#""x" in account.tech_stack && !("y" in account.tech_stack)"#,
    r#"account.type != "customer" && person.status == "Open""#,
    r#"account.engaged_people >= 1 || account.roles == ["a"]"#,
    r#"person.department in ["a", 1, true, null, 2.5]"#,
    r#"thresholds.mql_fit <= person.fit && person.engagement < thresholds.mql_engagement"#,
    r#"account.employees != null && null == person.title"#,
    r#"account.tech_stack == account.tech_stack"#,
    r#"1 in account.tech_stack || true in account.tech_stack"#,
    r#"account.annual_revenue > account.employees"#,
    r#"(person.country == account.country) == (account.region == "EMEA")"#,
    r#"person.title.startsWith("VP") || size(account.tech_stack) > 1"#,
    r#"has(person.title) && account.fit >= 10 && account.engagement > 0.5"#,
    r#"account.mql_people >= 2 || account.open_opportunities + 1.0 > 2"#,
    r#"account.won_opportunities == 0 && account.intent_surges_30d == 0"#,
    r#"null == null && null in [null, 1] && person.fit > 1.0"#,
];

fn conditions() -> Vec<Condition> {
    let m = Model::demand_waterfall();
    let mut out: Vec<Condition> = Vec::new();
    out.extend(m.scoring.fit.iter().map(|f| f.condition.clone()));
    out.extend(m.scoring.account_fit.iter().map(|f| f.condition.clone()));
    out.extend(m.rules.iter().filter_map(|r| r.condition.clone()));
    out.extend(m.account_rules.iter().map(|r| r.condition.clone()));
    out.extend(m.roles.iter().filter_map(|r| r.condition.clone()));
    out.extend(m.journeys.iter().filter_map(|j| j.condition.clone()));
    if let Some(r) = &m.routing {
        out.extend(r.territories.iter().map(|t| t.condition.clone()));
    }
    for text in EDGE_CASES {
        let toml = DEMAND_WATERFALL_TOML.replace(
            "when = \"person.fit >= thresholds.hand_raiser_fit\"",
            &format!("when = '''{text}'''"),
        );
        let m = load("edge.toml", &toml).unwrap_or_else(|d| panic!("{text}: {}", d.render()));
        let rule = m.rules.iter().find(|r| r.name == "hand-raiser").unwrap();
        out.push(rule.condition.clone().unwrap());
    }
    out
}

#[test]
fn the_shipped_conditions_all_run_compiled() {
    let m = Model::demand_waterfall();
    let all = m
        .scoring
        .fit
        .iter()
        .chain(&m.scoring.account_fit)
        .map(|f| &f.condition)
        .chain(m.rules.iter().filter_map(|r| r.condition.as_ref()))
        .chain(m.account_rules.iter().map(|r| &r.condition))
        .chain(m.roles.iter().filter_map(|r| r.condition.as_ref()))
        .chain(m.journeys.iter().filter_map(|j| j.condition.as_ref()));
    for c in all {
        assert!(c.is_compiled(), "`{}` runs on the interpreter", c.source());
    }
}

fn json_value() -> impl Strategy<Value = Json> {
    let scalar = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        prop_oneof![Just(0), Just(1), Just(2), Just(100), Just(250), Just(6000)]
            .prop_map(|n| json!(n)),
        prop_oneof![Just(1.0), Just(2.5), Just(-3.0), Just(1e300)].prop_map(|n| json!(n)),
        prop_oneof![
            Just("vp"),
            Just("a"),
            Just("x"),
            Just("y"),
            Just("salesforce"),
            Just("EMEA"),
            Just("customer"),
            Just("CEO"),
            Just(""),
        ]
        .prop_map(|s| json!(s)),
    ];
    prop_oneof![
        4 => scalar.clone(),
        1 => prop::collection::vec(scalar.clone(), 0..4).prop_map(Json::Array),
        1 => prop::collection::vec(scalar, 0..2)
            .prop_map(|v| json!([v, {"k": 1}, "x"])),
        1 => Just(json!({"a": 1})),
    ]
}

fn attrs(fields: &'static [&'static str]) -> impl Strategy<Value = Attrs> {
    prop::collection::vec(prop::option::of(json_value()), fields.len()).prop_map(move |vals| {
        fields
            .iter()
            .zip(vals)
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect()
    })
}

type Attrs = serde_json::Map<String, Json>;

const PERSON: &[&str] = &[
    "title",
    "seniority",
    "department",
    "country",
    "email_domain",
    "is_competitor",
    "stage",
    "status",
];
const ACCOUNT: &[&str] = &[
    "industry",
    "employees",
    "annual_revenue",
    "country",
    "tech_stack",
    "tier",
    "region",
    "segment",
    "icp_tier",
    "type",
    "roles",
    "engaged_people",
];
const ACTIVITY: &[&str] = &["url", "campaign", "form"];

/// An owned context the test borrows an [`EvalContext`] from.
#[derive(Debug, Clone)]
struct Owned {
    person: Option<Attrs>,
    account: Option<Attrs>,
    activity: Attrs,
    numbers: [f64; 4],
    stage: Option<&'static str>,
    status: Option<&'static str>,
    account_type: Option<&'static str>,
    aggregates: Option<AccountAggregates>,
    activity_kind: Option<&'static str>,
    opportunity: Option<(OpportunityKind, Option<f64>)>,
    thresholds: Option<Vec<(String, f64)>>,
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(3.0),
        Just(20.0),
        Just(35.0),
        Just(40.5),
        Just(f64::NAN)
    ]
}

fn owned() -> impl Strategy<Value = Owned> {
    let names = |v: &'static [&'static str]| prop::option::of(prop::sample::select(v));
    let aggregates = (0u32..3, 0u32..3, 0u32..2, 0u32..2, 0u32..2, any::<bool>()).prop_map(
        |(e, m, o, w, s, dm)| AccountAggregates {
            engaged_people: e,
            mql_people: m,
            open_opportunities: o,
            won_opportunities: w,
            intent_surges_30d: s,
            roles: if dm {
                vec!["decision_maker".into(), "a".into()]
            } else {
                vec![]
            },
        },
    );
    (
        (
            prop::option::of(attrs(PERSON)),
            prop::option::of(attrs(ACCOUNT)),
            attrs(ACTIVITY),
            prop::array::uniform4(number()),
        ),
        (
            names(&["MAL", "MQL", "SAL"]),
            names(&["Open", "Prospect"]),
            names(&["customer", "prospect"]),
            prop::option::of(aggregates),
            names(&["web_visit", "demo_request"]),
            prop::option::of((
                prop::sample::select(OpportunityKind::ALL.to_vec()),
                prop::option::of(prop_oneof![Just(500.0), Just(5000.0)]),
            )),
            prop::option::of(Just(vec![("mql_fit".to_string(), 10.0)])),
        ),
    )
        .prop_map(
            |(
                (person, account, activity, numbers),
                (stage, status, account_type, aggregates, activity_kind, opportunity, thresholds),
            )| Owned {
                person,
                account,
                activity,
                numbers,
                stage,
                status,
                account_type,
                aggregates,
                activity_kind,
                opportunity,
                thresholds,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn compiled_and_interpreted_agree(o in owned()) {
        let ctx = EvalContext {
            person: o.person.as_ref(),
            fit: o.numbers[0],
            engagement: o.numbers[1],
            stage: o.stage,
            status: o.status,
            account: o.account.as_ref(),
            account_fit: o.numbers[2],
            account_engagement: o.numbers[3],
            account_type: o.account_type,
            aggregates: o.aggregates.as_ref(),
            activity_kind: o.activity_kind,
            activity: Some(&o.activity),
            opportunity_kind: o.opportunity.map(|x| x.0),
            opportunity_amount: o.opportunity.and_then(|x| x.1),
            thresholds: o.thresholds.as_deref(),
        };
        for c in conditions_cached() {
            prop_assert_eq!(c.eval(&ctx), c.eval_interpreted(&ctx), "`{}`", c.source());
        }
    }
}

fn conditions_cached() -> &'static [Condition] {
    static ALL: std::sync::OnceLock<Vec<Condition>> = std::sync::OnceLock::new();
    ALL.get_or_init(conditions)
}
