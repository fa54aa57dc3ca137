//! Cases for the project's own reports (definitions in the repository's `docs/reports.md`).

use crate::support::*;
use serde_json::json;
use waterfall_core::{Field, Level, Period};
use waterfall_report::*;

#[test]
fn velocity_measures_closed_stays_by_end_period_and_open_stays_at_as_of() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-03T00:00:00Z", 2, "SAL"),
            stage("p1", "2025-02-02T00:00:00Z", 3, "SQL"),
            stage("p2", "2025-01-10T00:00:00Z", 4, "MQL"),
            stage("p2", "2025-01-22T00:00:00Z", 5, "SAL"),
            // After as_of: ignored, so p2's SAL stay is still open.
            stage("p2", "2025-03-01T00:00:00Z", 6, "SQL"),
        ],
    );
    let options = VelocityOptions {
        as_of: Some(ts("2025-02-12T00:00:00Z")),
        ..VelocityOptions::default()
    };
    check(
        &velocity(&h, &options),
        json!({"report":"velocity","period":"month","as_of":"2025-02-12T00:00:00Z",
        "rows":[
            {"period":"2025-01","stage":"MQL","stays":2,"median_days":7.0,"p90_days":11.0},
            {"period":"2025-02","stage":"SAL","stays":1,"median_days":30.0,"p90_days":30.0},
        ],
        "open":[
            {"stage":"SAL","people":1,"median_days":21.0,"p90_days":21.0},
            {"stage":"SQL","people":1,"median_days":10.0,"p90_days":10.0},
        ]}),
    );
}

#[test]
fn conversion_counts_the_next_stage_of_every_entry_including_recycles() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-05T00:00:00Z", 2, "MRL"),
            stage("p1", "2025-01-20T00:00:00Z", 3, "MQL"),
            stage("p1", "2025-01-21T00:00:00Z", 4, "SAL"),
            stage("p2", "2025-01-02T00:00:00Z", 5, "MQL"),
            stage("p2", "2025-01-03T00:00:00Z", 6, "SAL"),
            stage("p3", "2025-01-03T00:00:00Z", 7, "MQL"),
        ],
    );
    check(
        &conversion(&h, &ConversionOptions::default()),
        json!({"report":"conversion","rows":[
            {"from":"MQL","entries":4,"next":{"SAL":2,"MRL":1},"share":{"SAL":0.5,"MRL":0.25},"stayed":1},
            {"from":"SAL","entries":2,"next":{},"share":{},"stayed":2},
            {"from":"MRL","entries":1,"next":{"MQL":1},"share":{"MQL":1.0},"stayed":0},
        ]}),
    );
    let table = conversion(&h, &ConversionOptions::default()).to_table();
    assert!(table.contains("2 (50%)"), "{table}");
}

#[test]
fn recycling_counts_recycles_people_by_recycle_count_and_repeat_entries() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-05T00:00:00Z", 2, "MRL"),
            stage("p1", "2025-01-20T00:00:00Z", 3, "MQL"),
            stage("p1", "2025-01-25T00:00:00Z", 4, "MRL"),
            stage("p1", "2025-02-03T00:00:00Z", 5, "MQL"),
            stage("p1", "2025-02-04T00:00:00Z", 6, "SAL"),
            stage("p1", "2025-02-10T00:00:00Z", 7, "SRL"),
            stage("p2", "2025-01-02T00:00:00Z", 8, "MQL"),
            stage("p2", "2025-02-01T00:00:00Z", 9, "MRL"),
        ],
    );
    let options = RecyclingOptions {
        stage: "MQL".into(),
        recycle_stages: vec!["MRL".into(), "SRL".into()],
        period: Period::Month,
        by: None,
        as_of: None,
    };
    check(
        &recycling(&h, &options),
        json!({"report":"recycling","stage":"MQL","recycle_stages":["MRL","SRL"],"period":"month",
        "rows":[
            {"period":"2025-01","recycle_entries":2,"recycled_people":1,"recycled_once":0,
             "recycled_twice":1,"recycled_3_plus":0,"stage_entries":3,"repeat_entries":1,
             "repeat_rate":1.0/3.0},
            {"period":"2025-02","recycle_entries":2,"recycled_people":2,"recycled_once":1,
             "recycled_twice":0,"recycled_3_plus":1,"stage_entries":1,"repeat_entries":1,
             "repeat_rate":1.0},
        ]}),
    );
}

#[test]
fn status_counts_visible_people_by_status_and_by_stage() {
    let mut gone = person("p3", json!({}));
    gone.visible = false;
    let h = history(
        vec![person("p1", json!({})), person("p2", json!({})), gone],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MQL"),
            status_to("p1", "2025-01-01T00:00:00Z", 1, "Open"),
            status_to("p1", "2025-01-05T00:00:00Z", 2, "Working"),
            stage("p1", "2025-01-05T00:00:00Z", 2, "SAL"),
            stage("p2", "2025-01-02T00:00:00Z", 3, "MAL"),
            stage("p3", "2025-01-02T00:00:00Z", 4, "MQL"),
            status_to("p3", "2025-01-02T00:00:00Z", 4, "Open"),
        ],
    );
    let options = StatusOptions {
        as_of: ts("2025-01-03T00:00:00Z"),
        by: None,
    };
    check(
        &status(&h, &options),
        json!({"report":"status","as_of":"2025-01-03T00:00:00Z",
        "rows":[{"status":"Open","people":1},{"status":null,"people":1}],
        "by_stage":[
            {"stage":"MAL","status":null,"people":1},
            {"stage":"MQL","status":"Open","people":1},
        ]}),
    );
}

#[test]
fn sla_counts_each_rule_firing_once_per_person_by_owner() {
    let rule = |subject: &str, field, at: &str, seq, to: &str, rule: &str| {
        transition(Level::Person, field, subject, at, seq, to, rule)
    };
    let h = history(
        vec![
            person("p1", json!({"owner": "ann"})),
            person("p2", json!({"owner": "ann"})),
            person("p3", json!({"owner": "bob"})),
        ],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MQL"),
            // One timer firing changes stage and status: one breach.
            rule(
                "p1",
                Field::Stage,
                "2025-01-05T00:00:00Z",
                u64::MAX,
                "MRL",
                "sla:mql-accept",
            ),
            rule(
                "p1",
                Field::Status,
                "2025-01-05T00:00:00Z",
                u64::MAX,
                "Recycled",
                "sla:mql-accept",
            ),
            rule(
                "p2",
                Field::Stage,
                "2025-02-03T00:00:00Z",
                u64::MAX,
                "MRL",
                "sla:mql-accept",
            ),
            rule(
                "p3",
                Field::Status,
                "2025-01-07T00:00:00Z",
                9,
                "Nurture",
                "sla:sal-followup",
            ),
            rule(
                "p3",
                Field::Stage,
                "2025-01-08T00:00:00Z",
                10,
                "SAL",
                "explicit",
            ),
        ],
    );
    let options = SlaOptions {
        rules: vec!["sla:mql-accept".into(), "sla:sal-*".into()],
        period: Period::Month,
        by: Some("owner".into()),
        from: None,
        to: None,
        as_of: None,
    };
    check(
        &sla(&h, &options),
        json!({"report":"sla","period":"month","rules":["sla:mql-accept","sla:sal-*"],"rows":[
            {"period":"2025-01","rule":"sla:mql-accept","segment":"ann","breaches":1,"people":1},
            {"period":"2025-01","rule":"sla:sal-followup","segment":"bob","breaches":1,"people":1},
            {"period":"2025-02","rule":"sla:mql-accept","segment":"ann","breaches":1,"people":1},
        ]}),
    );
}

#[test]
fn every_extra_report_renders_as_table_and_csv() {
    let h = history(
        vec![person("p1", json!({"owner": "ann"}))],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-05T00:00:00Z", 2, "MRL"),
            status_to("p1", "2025-01-05T00:00:00Z", 2, "Recycled"),
            stage("p2", "2025-01-05T00:00:00Z", 3, "MQL"),
        ],
    );
    let by = Some("owner".to_string());
    let reports: Vec<Box<dyn Report>> = vec![
        Box::new(velocity(
            &h,
            &VelocityOptions {
                by: by.clone(),
                ..VelocityOptions::default()
            },
        )),
        Box::new(conversion(
            &h,
            &ConversionOptions {
                by: by.clone(),
                ..ConversionOptions::default()
            },
        )),
        Box::new(recycling(
            &h,
            &RecyclingOptions {
                stage: "MQL".into(),
                recycle_stages: vec!["MRL".into()],
                period: Period::Quarter,
                by: by.clone(),
                as_of: None,
            },
        )),
        Box::new(status(
            &h,
            &StatusOptions {
                as_of: ts("2025-02-01T00:00:00Z"),
                by: by.clone(),
            },
        )),
        Box::new(sla(
            &h,
            &SlaOptions {
                rules: vec!["explicit".into()],
                period: Period::Week,
                by,
                from: None,
                to: None,
                as_of: None,
            },
        )),
    ];
    for r in reports {
        let table = r.to_table();
        assert!(table.contains("ann") && table.contains("(none)"), "{table}");
        let csv = r.to_csv();
        let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
        let columns = lines[0].split(',').count();
        assert!(lines.len() > 1, "{}: {csv}", r.name());
        assert!(
            lines.iter().all(|l| l.split(',').count() == columns),
            "{}: {csv}",
            r.name()
        );
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["report"], r.name());
    }
}

#[test]
fn account_waterfall_uses_account_stages_and_attributes() {
    let acct = |id: &str, at: &str, seq, to: &str| {
        transition(Level::Account, Field::Stage, id, at, seq, to, "rollup")
    };
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MQL"),
            acct("a1", "2025-01-01T00:00:00Z", 1, "Engaged"),
            acct("a1", "2025-01-03T00:00:00Z", 2, "MQA"),
            acct("a2", "2025-01-04T00:00:00Z", 3, "Target"),
            acct("a2", "2025-02-04T00:00:00Z", 4, "Engaged"),
        ],
    )
    .with_accounts(
        vec![
            AccountInfo {
                id: "a1".into(),
                attrs: json!({"region": "EMEA"}).as_object().cloned().unwrap(),
                visible: true,
            },
            AccountInfo {
                id: "a3".into(),
                attrs: Default::default(),
                visible: true,
            },
        ],
        ["Target", "Engaged", "MQA", "Opportunity", "Customer"]
            .map(String::from)
            .to_vec(),
    );
    assert_eq!(h.account_stages()[0], "Target");
    let by = Some("region".to_string());
    check(
        &account_flow(
            &h,
            &FlowOptions {
                by: by.clone(),
                ..FlowOptions::default()
            },
        ),
        json!({"report":"flow","period":"month","rows":[
            {"period":"2025-01","stage":"Target","segment":null,"entries":1,"people":1},
            {"period":"2025-01","stage":"Engaged","segment":"EMEA","entries":1,"people":1},
            {"period":"2025-01","stage":"MQA","segment":"EMEA","entries":1,"people":1},
            {"period":"2025-02","stage":"Engaged","segment":null,"entries":1,"people":1},
        ]}),
    );
    check(
        &account_cohort(
            &h,
            &CohortOptions {
                stage: "Engaged".into(),
                period: Period::Year,
                by: None,
                as_of: None,
            },
        ),
        json!({"report":"cohort","stage":"Engaged","period":"year","rows":[
            {"period":"2025","size":2,"reached":{"MQA":1},"median_days":{"MQA":2.0}},
        ]}),
    );
    check(
        &account_snapshot(
            &h,
            &SnapshotOptions {
                as_of: ts("2025-01-31T00:00:00Z"),
                by,
            },
        ),
        json!({"report":"snapshot","as_of":"2025-01-31T00:00:00Z","rows":[
            {"stage":"Target","segment":null,"people":1},
            {"stage":"MQA","segment":"EMEA","people":1},
        ]}),
    );
    // Person reports do not see account stages.
    check(
        &flow(&h, &FlowOptions::default()),
        json!({"report":"flow","period":"month","rows":[
            {"period":"2025-01","stage":"MQL","entries":1,"people":1},
        ]}),
    );
}

#[test]
fn diff_shows_who_moves_and_which_flow_cells_change() {
    let old = history(
        vec![],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MAL"),
            stage("p2", "2025-01-01T00:00:00Z", 2, "MAL"),
            stage("p3", "2025-01-01T00:00:00Z", 3, "MAL"),
            stage("p3", "2025-01-02T00:00:00Z", 4, "MQL"),
        ],
    );
    // The new model qualifies p1 and p2 as MQL, and knows a person the old one did not.
    let new = history(
        vec![],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MAL"),
            stage("p1", "2025-01-03T00:00:00Z", 1, "MQL"),
            stage("p2", "2025-01-01T00:00:00Z", 2, "MAL"),
            stage("p2", "2025-02-03T00:00:00Z", 2, "MQL"),
            stage("p3", "2025-01-01T00:00:00Z", 3, "MAL"),
            stage("p3", "2025-01-02T00:00:00Z", 4, "MQL"),
            stage("p4", "2025-01-05T00:00:00Z", 5, "MAL"),
        ],
    );
    let options = DiffOptions {
        as_of: ts("2025-03-01T00:00:00Z"),
        period: Period::Month,
        examples: 1,
        cohort_stage: Some("MQL".into()),
        sla_rules_before: vec![],
        sla_rules_after: vec![],
    };
    let report = diff(&old, &new, &options);
    check(
        &report,
        json!({"report":"diff","as_of":"2025-03-01T00:00:00Z","period":"month",
        "moves":[
            {"before":null,"after":"MAL","people":1,"examples":["p4"]},
            {"before":"MAL","after":"MQL","people":2,"examples":["p1"]},
        ],
        "account_moves":[],
        "flow":[
            {"period":"2025-01","stage":"MAL","before":3,"after":4,"delta":1,"relative":1.0/3.0},
            {"period":"2025-01","stage":"MQL","before":1,"after":2,"delta":1,"relative":1.0},
            {"period":"2025-02","stage":"MQL","before":0,"after":1,"delta":1,"relative":null},
        ],
        "cohort_stage":"MQL",
        "cohort":[
            {"period":"2025-01","measure":"size","before":1,"after":2,"delta":1,"relative":1.0},
            {"period":"2025-02","measure":"size","before":0,"after":1,"delta":1,"relative":null},
        ],
        "transitions":[
            {"change":"appears","rule":"explicit","to":"MAL","transitions":1,"people":1,"examples":[
                {"person":"p4","at":"2025-01-05T00:00:00Z","from":null,"event":null,"why":null}]},
            {"change":"appears","rule":"explicit","to":"MQL","transitions":2,"people":2,"examples":[
                {"person":"p1","at":"2025-01-03T00:00:00Z","from":"MAL","event":null,"why":null}]},
        ],
        "sla_breaches":{"before":0,"after":0,"delta":0},
        "sla":[]}),
    );
    assert!(report.to_table().contains("3 people in a different stage"));
    let same = diff(&new, &new, &options);
    assert!(same.is_empty(), "{}", same.to_json());
    assert_eq!(report.to_csv().lines().count(), 6);
}
