//! The shipped models, the graph output and the JSON Schema.

use waterfall_model::*;

#[test]
fn shipped_models_load_clean() {
    for (name, text) in [
        ("models/demand-waterfall.toml", DEMAND_WATERFALL_TOML),
        ("models/history-only.toml", HISTORY_ONLY_TOML),
    ] {
        match load(name, text) {
            Ok(m) => assert!(m.warnings.is_empty(), "{:?}", m.warnings),
            Err(d) => panic!("{}", d.render()),
        }
    }
}

#[test]
fn checking_the_default_model_takes_milliseconds() {
    let start = std::time::Instant::now();
    for _ in 0..5 {
        load("m.toml", DEMAND_WATERFALL_TOML).unwrap();
    }
    // Debug build, shared machine: generous bound; release is far faster.
    eprintln!(
        "load: {:?} per check of the default model",
        start.elapsed() / 5
    );
    assert!(
        start.elapsed().as_millis() < 5 * 200,
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn history_only_has_no_automation_and_any_to_any() {
    let m = Model::history_only();
    let d = Model::demand_waterfall();
    assert!(m.rules.is_empty());
    assert!(m.any_to_any);
    assert_eq!(m.stage_id("MAL"), Some(m.initial_stage));
    let names = |m: &Model| m.stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&m), names(&d));
    let statuses = |m: &Model| {
        m.statuses
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(statuses(&m), statuses(&d));
    for a in 0..m.stages.len() as u16 {
        for b in 0..m.stages.len() as u16 {
            assert!(m.allows(a, b));
        }
    }
    assert!(m.coupling.status_to_stage.iter().all(Option::is_none));
    assert!(m.coupling.stage_to_status.iter().all(Option::is_none));
    for k in OpportunityKind::ALL {
        assert_eq!(m.outcome(k, OppTrigger::Lost), Some(&Outcome::default()));
    }
}

#[test]
fn default_model_semantics() {
    let m = Model::demand_waterfall();
    let st = |n: &str| m.stage_id(n).unwrap();
    let ss = |n: &str| m.status_id(n).unwrap();
    assert!(m.allows(st("MAL"), st("MQL")));
    assert!(m.allows(st("MRL"), st("MQL")));
    assert!(!m.allows(st("MAL"), st("Customer")));
    assert_eq!(
        m.coupling.status_to_stage[ss("Working") as usize],
        Some(st("SAL"))
    );
    assert_eq!(
        m.coupling.status_to_stage[ss("Qualified") as usize],
        Some(st("SQL"))
    );
    assert_eq!(
        m.coupling.stage_to_status[st("MQL") as usize],
        Some(ss("Open"))
    );
    let lost_nb = m
        .outcome(OpportunityKind::NewBusiness, OppTrigger::Lost)
        .unwrap();
    assert_eq!(
        (lost_nb.stage, lost_nb.status),
        (Some(st("SRL")), Some(ss("Opportunity Lost")))
    );
    let lost_ex = m
        .outcome(OpportunityKind::Expansion, OppTrigger::Lost)
        .unwrap();
    assert_eq!(lost_ex.stage, Some(st("Customer")));
    let created = m
        .outcome(OpportunityKind::NewBusiness, OppTrigger::Created)
        .unwrap();
    assert_eq!(created.stage, Some(st("SQO")));
    assert_eq!(m.scoring.points_for("demo_request"), 40.0);
    assert!((m.scoring.decay(100.0, 30.0) - 50.0).abs() < 1e-9);
    let sla = m.rules_for(TriggerKind::Timer).next().unwrap();
    assert_eq!(
        sla.trigger,
        Trigger::Timer {
            in_stage: Some(st("MQL")),
            in_status: None,
            after: Duration {
                amount: 3,
                unit: TimeUnit::BusinessDays
            },
            kind: TimerKind::InStage,
        }
    );
    assert_eq!(m.account_stages.len(), 6);
    assert_eq!(m.initial_account_stage, m.account_stage_id("Target"));
}

#[test]
fn graphs_show_every_stage_and_rule_edges() {
    let m = Model::demand_waterfall();
    let mermaid = m.to_mermaid();
    assert!(mermaid.starts_with("flowchart TD"));
    for s in &m.stages {
        assert!(mermaid.contains(&format!("\"{}\"", s.name)), "{}", s.name);
    }
    assert!(mermaid.contains("mql-not-accepted"), "{mermaid}");
    eprintln!("{mermaid}");
    let dot = m.to_dot();
    assert!(dot.starts_with("digraph"));
    assert!(dot.trim_end().ends_with('}'));
    assert!(dot.contains("label=\"SQO\""));
}

/// The committed schema (`models/waterfall-model.schema.json`) must match the code; run
/// with `UPDATE_SCHEMA=1` to regenerate it.
#[test]
fn json_schema_is_committed_and_current() {
    let schema = json_schema();
    let parsed: serde_json::Value = serde_json::from_str(&schema).unwrap();
    let props = parsed["properties"].as_object().unwrap();
    for key in [
        "model",
        "stage",
        "status",
        "rule",
        "score",
        "outcome",
        "calendar",
        "account_stage",
        "journey",
        "fields",
    ] {
        assert!(props.contains_key(key), "{key}");
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/waterfall-model.schema.json"
    );
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, format!("{schema}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        committed.trim_end(),
        schema.trim_end(),
        "schema drifted: run with UPDATE_SCHEMA=1"
    );
}

#[test]
fn shipped_models_state_their_matching() {
    let d = Model::demand_waterfall();
    assert!(d.matching.enabled && d.matching.dedup.merge_duplicates);
    assert_eq!(d.matching.tie_break, TieBreak::MostPeople);
    // History-only trusts the imported data: no inferred accounts, no automatic merges.
    let h = Model::history_only();
    assert!(!h.matching.is_active());
}
