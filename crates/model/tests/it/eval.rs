//! Conditions evaluated against an engine-filled context.

use serde_json::json;
use waterfall_model::*;

fn attrs(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn fit_condition(model: &Model, name: &str) -> Condition {
    model
        .scoring
        .fit
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.condition.clone())
        .unwrap_or_else(|| panic!("no fit rule {name}"))
}

#[test]
fn mql_gate_reads_scores_and_thresholds() {
    let m = Model::demand_waterfall();
    let rule = m
        .rules_for(TriggerKind::ScoreCrossed)
        .find(|r| r.name == "mql-by-engagement")
        .unwrap();
    let cond = rule.condition.as_ref().unwrap();
    let mut ctx = EvalContext {
        fit: 45.0,
        engagement: 70.0,
        thresholds: Some(&m.scoring.thresholds),
        ..EvalContext::default()
    };
    assert_eq!(cond.eval(&ctx), Ok(true));
    ctx.fit = 10.0;
    assert_eq!(cond.eval(&ctx), Ok(false));
}

#[test]
fn attributes_lists_and_missing_values() {
    let m = Model::demand_waterfall();
    let person = attrs(json!({"seniority": "vp"}));
    let account =
        attrs(json!({"employees": 800, "tech_stack": ["salesforce"], "industry": "saas"}));
    let ctx = EvalContext {
        person: Some(&person),
        account: Some(&account),
        ..EvalContext::default()
    };
    assert_eq!(
        fit_condition(&m, "decision-level seniority").eval(&ctx),
        Ok(true)
    );
    assert_eq!(
        fit_condition(&m, "company size in our sweet spot").eval(&ctx),
        Ok(true)
    );
    assert_eq!(
        fit_condition(&m, "runs a CRM we integrate with").eval(&ctx),
        Ok(true)
    );
    assert_eq!(fit_condition(&m, "target industry").eval(&ctx), Ok(true));
    // Missing attributes and missing context parts are false, never errors.
    assert_eq!(
        fit_condition(&m, "personal email address").eval(&ctx),
        Ok(false)
    );
    let empty = EvalContext::default();
    for f in &m.scoring.fit {
        assert_eq!(f.condition.eval(&empty), Ok(false), "{}", f.name);
    }
}

#[test]
fn account_rollup_conditions() {
    let m = Model::demand_waterfall();
    let mqa = m.account_rules.iter().find(|r| r.name == "mqa").unwrap();
    let mut agg = AccountAggregates {
        engaged_people: 3,
        roles: vec!["decision_maker".into()],
        ..AccountAggregates::default()
    };
    let ctx = EvalContext {
        aggregates: Some(&agg),
        ..EvalContext::default()
    };
    assert_eq!(mqa.condition.eval(&ctx), Ok(true));
    agg.roles.clear();
    let ctx = EvalContext {
        aggregates: Some(&agg),
        ..EvalContext::default()
    };
    assert_eq!(mqa.condition.eval(&ctx), Ok(false));
}

#[test]
fn journeys_are_chosen_by_condition() {
    let m = Model::demand_waterfall();
    let customer = EvalContext {
        account_type: Some("customer"),
        ..EvalContext::default()
    };
    let prospect = EvalContext {
        account_type: Some("prospect"),
        ..EvalContext::default()
    };
    let name = |ctx: &EvalContext<'_>| {
        m.journey_for(ctx)
            .map(|j| m.journeys[j as usize].name.clone())
    };
    assert_eq!(name(&customer).as_deref(), Some("expansion"));
    assert_eq!(name(&prospect).as_deref(), Some("new_business"));
    assert_eq!(
        name(&EvalContext::default()).as_deref(),
        Some("new_business")
    );
}

#[test]
fn activity_and_opportunity_namespaces() {
    let text = waterfall_model::DEMAND_WATERFALL_TOML.replace(
        "when = \"person.fit >= thresholds.hand_raiser_fit\"",
        "when = 'person.fit >= thresholds.hand_raiser_fit && activity.kind == \"demo_request\" && activity.form.startsWith(\"demo\")'",
    );
    let m = load("m.toml", &text).unwrap_or_else(|d| panic!("{}", d.render()));
    let rule = m
        .rules_for(TriggerKind::Activity)
        .find(|r| r.name == "hand-raiser")
        .unwrap();
    let act = attrs(json!({"form": "demo-2026"}));
    let ctx = EvalContext {
        fit: 30.0,
        activity_kind: Some("demo_request"),
        activity: Some(&act),
        thresholds: Some(&m.scoring.thresholds),
        ..EvalContext::default()
    };
    assert_eq!(rule.condition.as_ref().unwrap().eval(&ctx), Ok(true));
}

#[test]
fn rules_are_indexed_by_trigger_and_priority() {
    let m = Model::demand_waterfall();
    let timers: Vec<&str> = m
        .rules_for(TriggerKind::Timer)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        timers,
        ["mql-not-accepted", "sal-gone-quiet", "sql-gone-quiet"]
    );
    let created: Vec<&str> = m
        .rules_for(TriggerKind::PersonCreated)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(created, ["competitor"]);
    for kind in TriggerKind::ALL {
        for r in m.rules_for(kind) {
            assert_eq!(r.trigger.kind(), kind);
        }
    }
}

#[test]
fn model_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
    assert_send_sync::<Diagnostics>();
}

#[test]
fn thresholds_are_compiled_in_and_can_be_overridden() {
    let m = Model::demand_waterfall();
    let rule = m
        .rules_for(TriggerKind::Activity)
        .find(|r| r.name == "hand-raiser")
        .unwrap();
    let cond = rule.condition.as_ref().unwrap();
    let ctx = EvalContext {
        fit: 25.0,
        ..EvalContext::default()
    };
    assert_eq!(
        cond.eval(&ctx),
        Ok(true),
        "hand_raiser_fit = 20 comes from the model"
    );
    let stricter = [("hand_raiser_fit".to_string(), 30.0)];
    let ctx = EvalContext {
        fit: 25.0,
        thresholds: Some(&stricter),
        ..EvalContext::default()
    };
    assert_eq!(cond.eval(&ctx), Ok(false));
}

#[test]
fn summary_line() {
    let m = Model::demand_waterfall();
    assert_eq!(
        m.summary(),
        "demand-waterfall: 9 stages, 10 statuses, 8 rules, 6 account stages, 2 journeys"
    );
    assert!(Model::history_only()
        .summary()
        .contains("any stage may follow any other"));
}

fn with_hand_raiser_condition(cond: &str) -> Result<Model, Diagnostics> {
    let text = DEMAND_WATERFALL_TOML.replace(
        "when = \"person.fit >= thresholds.hand_raiser_fit\"",
        &format!("when = '''{cond}'''"),
    );
    load("m.toml", &text)
}

fn hand_raiser(m: &Model) -> &Condition {
    m.rules_for(TriggerKind::Activity)
        .find(|r| r.name == "hand-raiser")
        .and_then(|r| r.condition.as_ref())
        .unwrap()
}

#[test]
fn presence_tests_and_macros() {
    let m = with_hand_raiser_condition(
        r#"has(person.title) && account.roles.exists(r, r == "champion") && size(account.tech_stack) >= 1"#,
    )
    .unwrap_or_else(|d| panic!("{}", d.render()));
    let person = attrs(json!({"title": "VP Marketing"}));
    let account = attrs(json!({"tech_stack": ["hubspot"]}));
    let agg = AccountAggregates {
        roles: vec!["champion".into()],
        ..AccountAggregates::default()
    };
    let ctx = EvalContext {
        person: Some(&person),
        account: Some(&account),
        aggregates: Some(&agg),
        ..EvalContext::default()
    };
    assert_eq!(hand_raiser(&m).eval(&ctx), Ok(true));
    let nobody = attrs(json!({}));
    let ctx = EvalContext {
        person: Some(&nobody),
        ..ctx
    };
    assert_eq!(hand_raiser(&m).eval(&ctx), Ok(false));
}

#[test]
fn opportunity_kind_literals_are_checked() {
    let d = with_hand_raiser_condition(r#"opportunity.kind == "upsell""#).unwrap_err();
    let item = d
        .items
        .iter()
        .find(|i| i.message.contains("unknown opportunity kind `upsell`"));
    assert!(item.is_some(), "{}", d.render());
    let m = with_hand_raiser_condition(
        r#"opportunity.kind == "expansion" && opportunity.amount > 10000"#,
    )
    .unwrap_or_else(|d| panic!("{}", d.render()));
    let ctx = EvalContext {
        opportunity_kind: Some(OpportunityKind::Expansion),
        opportunity_amount: Some(25_000.0),
        ..EvalContext::default()
    };
    assert_eq!(hand_raiser(&m).eval(&ctx), Ok(true));
}

#[test]
fn wrong_runtime_types_are_errors_not_panics() {
    // `seniority` is declared a string; an event that sends a number makes the comparison
    // fail at run time: an error the engine treats as false.
    let m = Model::demand_waterfall();
    let cond = &m
        .scoring
        .fit
        .iter()
        .find(|f| f.name == "decision-level seniority")
        .unwrap()
        .condition;
    let person = attrs(json!({"seniority": 7}));
    let ctx = EvalContext {
        person: Some(&person),
        ..EvalContext::default()
    };
    assert!(!cond.eval(&ctx).unwrap_or(false));
}
