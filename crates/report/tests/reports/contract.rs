//! One case per rule of the reports contract.

use crate::support::*;
use serde_json::json;
use waterfall_core::Period;
use waterfall_report::*;

fn cohort_of(h: &History, stage: &str, period: Period) -> CohortReport {
    cohort(
        h,
        &CohortOptions {
            stage: stage.into(),
            period,
            by: None,
            as_of: None,
        },
    )
}

#[test]
fn flow_counts_entries_and_people_per_period_and_stage() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-03T00:00:00Z", 1, "MAL"),
            stage("p1", "2025-01-04T00:00:00Z", 2, "MQL"),
            stage("p1", "2025-01-10T00:00:00Z", 3, "MRL"),
            stage("p1", "2025-01-20T00:00:00Z", 4, "MQL"),
            stage("p2", "2025-01-05T00:00:00Z", 5, "MQL"),
            stage("p2", "2025-02-01T00:00:00Z", 6, "SAL"),
        ],
    );
    check(
        &flow(&h, &FlowOptions::default()),
        json!({"report":"flow","period":"month","rows":[
            {"period":"2025-01","stage":"MAL","entries":1,"people":1},
            {"period":"2025-01","stage":"MQL","entries":3,"people":2},
            {"period":"2025-01","stage":"MRL","entries":1,"people":1},
            {"period":"2025-02","stage":"SAL","entries":1,"people":1},
        ]}),
    );
}

#[test]
fn flow_from_is_inclusive_and_to_exclusive() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-15T00:00:00Z", 2, "SAL"),
            stage("p1", "2025-02-01T00:00:00Z", 3, "SQL"),
        ],
    );
    let options = FlowOptions {
        from: Some(ts("2025-01-01T00:00:00Z")),
        to: Some(ts("2025-02-01T00:00:00Z")),
        ..FlowOptions::default()
    };
    check(
        &flow(&h, &options),
        json!({"report":"flow","period":"month","rows":[
            {"period":"2025-01","stage":"MQL","entries":1,"people":1},
            {"period":"2025-01","stage":"SAL","entries":1,"people":1},
        ]}),
    );
    let as_of = FlowOptions {
        as_of: Some(ts("2025-01-14T00:00:00Z")),
        ..FlowOptions::default()
    };
    check(
        &flow(&h, &as_of),
        json!({"report":"flow","period":"month","rows":[
            {"period":"2025-01","stage":"MQL","entries":1,"people":1},
        ]}),
    );
}

#[test]
fn flow_by_attribute_puts_people_without_it_under_null() {
    let h = history(
        vec![
            person("p1", json!({"source": "webinar"})),
            person("p2", json!({"source": null})),
            person("p3", json!({"employees": 250})),
            person("p4", json!({"source": true})),
        ],
        vec![
            stage("p1", "2025-01-03T00:00:00Z", 1, "MQL"),
            stage("p2", "2025-01-03T00:00:00Z", 2, "MQL"),
            stage("p3", "2025-01-03T00:00:00Z", 3, "MQL"),
            stage("p4", "2025-01-03T00:00:00Z", 4, "MQL"),
            stage("p5", "2025-01-03T00:00:00Z", 5, "MQL"),
        ],
    );
    let options = FlowOptions {
        by: Some("source".into()),
        ..FlowOptions::default()
    };
    check(
        &flow(&h, &options),
        json!({"report":"flow","period":"month","rows":[
            {"period":"2025-01","stage":"MQL","segment":"true","entries":1,"people":1},
            {"period":"2025-01","stage":"MQL","segment":"webinar","entries":1,"people":1},
            {"period":"2025-01","stage":"MQL","segment":null,"entries":3,"people":3},
        ]}),
    );
    let options = FlowOptions {
        by: Some("employees".into()),
        ..FlowOptions::default()
    };
    check(
        &flow(&h, &options),
        json!({"report":"flow","period":"month","rows":[
            {"period":"2025-01","stage":"MQL","segment":"250","entries":1,"people":1},
            {"period":"2025-01","stage":"MQL","segment":null,"entries":4,"people":4},
        ]}),
    );
}

#[test]
fn week_labels_are_iso_weeks_across_year_boundaries() {
    let h = history(
        vec![],
        vec![
            // 2024-12-30 is the Monday of ISO week 2025-W01.
            stage("p1", "2024-12-30T00:00:00Z", 1, "MQL"),
            // 2027-01-01 belongs to ISO week 2026-W53.
            stage("p2", "2027-01-01T12:00:00Z", 2, "MQL"),
            stage("p3", "2024-12-29T23:59:59Z", 3, "MQL"),
        ],
    );
    let options = FlowOptions {
        period: Period::Week,
        ..FlowOptions::default()
    };
    check(
        &flow(&h, &options),
        json!({"report":"flow","period":"week","rows":[
            {"period":"2024-W52","stage":"MQL","entries":1,"people":1},
            {"period":"2025-W01","stage":"MQL","entries":1,"people":1},
            {"period":"2026-W53","stage":"MQL","entries":1,"people":1},
        ]}),
    );
    let quarters = FlowOptions {
        period: Period::Quarter,
        ..FlowOptions::default()
    };
    check(
        &flow(&h, &quarters),
        json!({"report":"flow","period":"quarter","rows":[
            {"period":"2024-Q4","stage":"MQL","entries":2,"people":2},
            {"period":"2027-Q1","stage":"MQL","entries":1,"people":1},
        ]}),
    );
}

#[test]
fn setting_the_current_stage_again_is_not_an_entry() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-03T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-04T00:00:00Z", 2, "MQL"),
        ],
    );
    check(
        &flow(&h, &FlowOptions::default()),
        json!({"report":"flow","period":"month","rows":[
            {"period":"2025-01","stage":"MQL","entries":1,"people":1},
        ]}),
    );
}

#[test]
fn a_recycled_person_counts_in_the_cohort_once_per_attempt() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-01T00:00:00Z", 1, "MAL"),
            stage("p1", "2025-01-02T00:00:00Z", 2, "MQL"),
            stage("p1", "2025-01-12T00:00:00Z", 3, "MRL"),
            stage("p1", "2025-01-20T00:00:00Z", 4, "MQL"),
            stage("p1", "2025-01-22T00:00:00Z", 5, "SAL"),
            stage("p1", "2025-02-01T00:00:00Z", 6, "MRL"),
        ],
    );
    // Attempt 1 (Jan 2): MRL after 10 days. Attempt 2 (Jan 20): SAL after 2, MRL after 12.
    check(
        &cohort_of(&h, "MQL", Period::Month),
        json!({"report":"cohort","stage":"MQL","period":"month","rows":[
            {"period":"2025-01","size":2,
             "reached":{"SAL":1,"MRL":2},
             "median_days":{"SAL":2.0,"MRL":11.0}},
        ]}),
    );
}

#[test]
fn an_attempt_ends_at_the_next_entry_into_the_cohort_stage() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-02T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-05T00:00:00Z", 2, "MRL"),
            stage("p1", "2025-03-01T00:00:00Z", 3, "MQL"),
            stage("p1", "2025-03-03T00:00:00Z", 4, "SAL"),
        ],
    );
    // The January attempt never reached SAL: the March attempt did.
    check(
        &cohort_of(&h, "MQL", Period::Month),
        json!({"report":"cohort","stage":"MQL","period":"month","rows":[
            {"period":"2025-01","size":1,"reached":{"MRL":1},"median_days":{"MRL":3.0}},
            {"period":"2025-03","size":1,"reached":{"SAL":1},"median_days":{"SAL":2.0}},
        ]}),
    );
}

#[test]
fn same_instant_entries_are_ordered_by_ingestion_sequence() {
    let h = history(
        vec![],
        vec![
            // p1: MQL then SAL at one instant, SAL applied after: reached in 0 days.
            stage("p1", "2025-01-02T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-02T00:00:00Z", 2, "SAL"),
            // p2: SAL applied before MQL at the same instant: not reached.
            stage("p2", "2025-01-02T00:00:00Z", 4, "MQL"),
            stage("p2", "2025-01-02T00:00:00Z", 3, "SAL"),
        ],
    );
    check(
        &cohort_of(&h, "MQL", Period::Month),
        json!({"report":"cohort","stage":"MQL","period":"month","rows":[
            {"period":"2025-01","size":2,"reached":{"SAL":1},"median_days":{"SAL":0.0}},
        ]}),
    );
}

#[test]
fn the_median_is_interpolated_over_even_counts() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-02T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-03T00:00:00Z", 2, "SAL"),
            stage("p2", "2025-01-02T00:00:00Z", 3, "MQL"),
            stage("p2", "2025-01-04T00:00:00Z", 4, "SAL"),
            stage("p3", "2025-01-02T00:00:00Z", 5, "MQL"),
            stage("p3", "2025-01-05T00:00:00Z", 6, "SAL"),
            stage("p4", "2025-01-02T00:00:00Z", 7, "MQL"),
            stage("p4", "2025-01-12T06:00:00Z", 8, "SAL"),
        ],
    );
    // Days 1, 2, 3, 10.25: median (2 + 3) / 2.
    check(
        &cohort_of(&h, "MQL", Period::Month),
        json!({"report":"cohort","stage":"MQL","period":"month","rows":[
            {"period":"2025-01","size":4,"reached":{"SAL":4},"median_days":{"SAL":2.5}},
        ]}),
    );
    assert_eq!(quantile_cont(&mut [1.0, 2.0, 3.0, 10.25], 0.5), Some(2.5));
    assert_eq!(quantile_cont(&mut [3.0, 1.0, 2.0], 0.5), Some(2.0));
    assert_eq!(quantile_cont(&mut [0.0, 10.0], 0.9), Some(9.0));
    assert_eq!(quantile_cont(&mut [], 0.5), None);
}

#[test]
fn cohort_as_of_ignores_everything_after_the_instant() {
    let h = history(
        vec![person("p1", json!({"region": "EMEA"}))],
        vec![
            stage("p1", "2025-01-02T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-04T00:00:00Z", 2, "SAL"),
            stage("p1", "2025-01-10T00:00:00Z", 3, "SQL"),
            stage("p2", "2025-01-20T00:00:00Z", 4, "MQL"),
        ],
    );
    let options = CohortOptions {
        stage: "MQL".into(),
        period: Period::Month,
        by: Some("region".into()),
        as_of: Some(ts("2025-01-04T00:00:00Z")),
    };
    check(
        &cohort(&h, &options),
        json!({"report":"cohort","stage":"MQL","period":"month","rows":[
            {"period":"2025-01","segment":"EMEA","size":1,"reached":{"SAL":1},"median_days":{"SAL":2.0}},
        ]}),
    );
}

#[test]
fn cohort_of_an_unknown_stage_is_empty() {
    let h = history(vec![], vec![stage("p1", "2025-01-02T00:00:00Z", 1, "MQL")]);
    check(
        &cohort_of(&h, "Nope", Period::Month),
        json!({"report":"cohort","stage":"Nope","period":"month","rows":[]}),
    );
}

#[test]
fn a_person_re_entering_a_stage_counts_each_entry() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-02T00:00:00Z", 1, "SAL"),
            stage("p1", "2025-01-03T00:00:00Z", 2, "SRL"),
            stage("p1", "2025-01-04T00:00:00Z", 3, "SAL"),
            stage("p1", "2025-01-05T00:00:00Z", 4, "SRL"),
        ],
    );
    check(
        &flow(&h, &FlowOptions::default()),
        json!({"report":"flow","period":"month","rows":[
            {"period":"2025-01","stage":"SAL","entries":2,"people":1},
            {"period":"2025-01","stage":"SRL","entries":2,"people":1},
        ]}),
    );
    check(
        &cohort_of(&h, "SAL", Period::Month),
        json!({"report":"cohort","stage":"SAL","period":"month","rows":[
            {"period":"2025-01","size":2,"reached":{"SRL":2},"median_days":{"SRL":1.0}},
        ]}),
    );
}

#[test]
fn stages_not_in_the_model_are_reported_after_the_model_stages() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-02T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-03T00:00:00Z", 2, "Legacy Nurture"),
            stage("p2", "2025-01-02T00:00:00Z", 3, "MQL"),
            stage("p2", "2025-01-04T00:00:00Z", 4, "SAL"),
        ],
    );
    assert_eq!(h.stages().last().unwrap(), "Legacy Nurture");
    check(
        &cohort_of(&h, "MQL", Period::Year),
        json!({"report":"cohort","stage":"MQL","period":"year","rows":[
            {"period":"2025","size":2,"reached":{"SAL":1,"Legacy Nurture":1},
             "median_days":{"SAL":2.0,"Legacy Nurture":1.0}},
        ]}),
    );
    check(
        &snapshot(
            &h,
            &SnapshotOptions {
                as_of: ts("2026-01-01T00:00:00Z"),
                by: None,
            },
        ),
        json!({"report":"snapshot","as_of":"2026-01-01T00:00:00Z","rows":[
            {"stage":"SAL","people":1},
            {"stage":"Legacy Nurture","people":1},
        ]}),
    );
}

#[test]
fn snapshot_takes_the_last_entry_at_or_before_the_instant() {
    let h = history(
        vec![
            person("p1", json!({"source": "event"})),
            person("p2", json!({})),
        ],
        vec![
            stage("p1", "2025-01-02T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-10T00:00:00Z", 2, "SAL"),
            stage("p2", "2025-01-05T00:00:00Z", 3, "MQL"),
            // Same instant as the snapshot: counts.
            stage("p2", "2025-01-06T00:00:00Z", 4, "MRL"),
            // After the snapshot: p3 does not exist yet.
            stage("p3", "2025-01-07T00:00:00Z", 5, "MAL"),
        ],
    );
    let options = SnapshotOptions {
        as_of: ts("2025-01-06T00:00:00Z"),
        by: Some("source".into()),
    };
    check(
        &snapshot(&h, &options),
        json!({"report":"snapshot","as_of":"2025-01-06T00:00:00Z","rows":[
            {"stage":"MQL","segment":"event","people":1},
            {"stage":"MRL","segment":null,"people":1},
        ]}),
    );
}

#[test]
fn snapshot_skips_erased_and_merged_people() {
    let mut gone = person("p2", json!({}));
    gone.visible = false;
    let h = history(
        vec![person("p1", json!({})), gone],
        vec![
            stage("p1", "2025-01-02T00:00:00Z", 1, "MQL"),
            stage("p2", "2025-01-02T00:00:00Z", 2, "MQL"),
        ],
    );
    check(
        &snapshot(
            &h,
            &SnapshotOptions {
                as_of: ts("2025-02-01T00:00:00Z"),
                by: None,
            },
        ),
        json!({"report":"snapshot","as_of":"2025-02-01T00:00:00Z","rows":[
            {"stage":"MQL","people":1},
        ]}),
    );
}

#[test]
fn status_and_account_transitions_do_not_count_as_stage_entries() {
    let h = history(
        vec![],
        vec![
            stage("p1", "2025-01-02T00:00:00Z", 1, "MQL"),
            status_to("p1", "2025-01-02T00:00:00Z", 1, "Open"),
            transition(
                waterfall_core::Level::Account,
                waterfall_core::Field::Stage,
                "a1",
                "2025-01-02T00:00:00Z",
                1,
                "Engaged",
                "rollup",
            ),
        ],
    );
    check(
        &flow(&h, &FlowOptions::default()),
        json!({"report":"flow","period":"month","rows":[
            {"period":"2025-01","stage":"MQL","entries":1,"people":1},
        ]}),
    );
    assert_eq!(h.account_stage_track().entries().len(), 1);
    assert_eq!(h.status_track().entries().len(), 1);
}

#[test]
fn tables_and_csv_render_every_contract_report() {
    let h = history(
        vec![person("p1", json!({"source": "web, paid"}))],
        vec![
            stage("p1", "2025-01-02T00:00:00Z", 1, "MQL"),
            stage("p1", "2025-01-04T00:00:00Z", 2, "SAL"),
            stage("p2", "2025-01-02T00:00:00Z", 3, "MQL"),
        ],
    );
    let c = cohort_of(&h, "MQL", Period::Month);
    let table = c.to_table();
    assert!(table.contains("1 (50%) 2.0d"), "{table}");
    assert_eq!(
        c.to_csv(),
        "period,size,reached_SAL,median_days_SAL\r\n2025-01,2,1,2\r\n"
    );
    let f = flow(
        &h,
        &FlowOptions {
            by: Some("source".into()),
            ..FlowOptions::default()
        },
    );
    assert_eq!(
        f.to_csv(),
        "period,stage,segment,entries,people\r\n\
         2025-01,MQL,\"web, paid\",1,1\r\n\
         2025-01,MQL,,1,1\r\n\
         2025-01,SAL,\"web, paid\",1,1\r\n"
    );
    let table = f.to_table();
    assert!(table.contains("(none)"), "{table}");
    let boxed: Vec<Box<dyn Report>> = vec![
        Box::new(f),
        Box::new(c),
        Box::new(snapshot(
            &h,
            &SnapshotOptions {
                as_of: ts("2025-02-01T00:00:00Z"),
                by: None,
            },
        )),
    ];
    for r in boxed {
        assert!(!r.to_table().is_empty());
        assert!(r
            .to_json()
            .starts_with(&format!("{{\"report\":\"{}\"", r.name())));
    }
}

#[test]
fn periods_far_apart_are_still_labelled_and_sorted() {
    // More than 200,000 days apart: periods are computed per entry instead of by table.
    let h = history(
        vec![],
        vec![
            stage("p1", "2500-06-01T00:00:00Z", 1, "MQL"),
            stage("p2", "1900-01-01T00:00:00Z", 2, "MQL"),
            stage("p2", "1900-01-03T00:00:00Z", 3, "SAL"),
            stage("p3", "2025-03-01T00:00:00Z", 4, "MQL"),
        ],
    );
    check(
        &flow(&h, &FlowOptions::default()),
        json!({"report":"flow","period":"month","rows":[
            {"period":"1900-01","stage":"MQL","entries":1,"people":1},
            {"period":"1900-01","stage":"SAL","entries":1,"people":1},
            {"period":"2025-03","stage":"MQL","entries":1,"people":1},
            {"period":"2500-06","stage":"MQL","entries":1,"people":1},
        ]}),
    );
    check(
        &cohort_of(&h, "MQL", Period::Year),
        json!({"report":"cohort","stage":"MQL","period":"year","rows":[
            {"period":"1900","size":1,"reached":{"SAL":1},"median_days":{"SAL":2.0}},
            {"period":"2025","size":1,"reached":{},"median_days":{}},
            {"period":"2500","size":1,"reached":{},"median_days":{}},
        ]}),
    );
}
