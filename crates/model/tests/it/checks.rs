//! One broken model per check: each must give the right diagnostic at the right line.
//!
//! The expected line is marked in the model text with a `#^` comment.

use waterfall_model::{load, Diagnostic};

const OUTCOMES: &str = r#"
[outcome.new_business]
lost = {}
[outcome.expansion]
lost = {}
[outcome.renewal]
lost = {}
"#;

/// A small valid model; `extra` is appended (before the outcomes).
fn model(extra: &str) -> String {
    format!(
        r#"[model]
name = "t"
initial_stage = "A"
initial_status = "New"

[fields.person]
title = "string"
employees = "number"

[[stage]]
name = "A"
kind = "active"
definition = "first"
next = ["B", "C"]

[[stage]]
name = "B"
kind = "active"
definition = "second"
next = ["C"]

[[stage]]
name = "C"
kind = "terminal"
definition = "last"

[[status]]
name = "New"
definition = "new"
{extra}
{OUTCOMES}"#
    )
}

/// Loads `text`, expects an error with `code` whose message contains `message`, on the
/// line marked `#^`. Returns the diagnostic.
#[track_caller]
fn check(text: &str, code: &str, message: &str) -> Diagnostic {
    let line = text
        .lines()
        .position(|l| l.contains("#^"))
        .map(|i| i + 1)
        .expect("the test marks the expected line with #^");
    let diags = match load("broken.toml", text) {
        Ok(_) => panic!("expected `{code}` but the model loaded"),
        Err(d) => d,
    };
    let rendered = diags.render();
    let found = diags
        .items
        .iter()
        .find(|d| d.code == code && d.message.contains(message));
    let Some(d) = found else {
        panic!("no `{code}` diagnostic containing {message:?}:\n{rendered}");
    };
    assert_eq!(d.line, line, "wrong line for `{code}`:\n{rendered}");
    assert!(rendered.contains(&format!("broken.toml:{}:{}", d.line, d.column)));
    assert!(!rendered.contains('\x1b'), "plain rendering has no colours");
    d.clone()
}

#[test]
fn base_model_is_valid() {
    let text = model("");
    if let Err(d) = load("ok.toml", &text) {
        panic!("{}", d.render());
    }
}

#[test]
fn toml_syntax_error() {
    let text = model("[[rule]\n#^ broken header");
    let text = text.replacen("[[rule]\n#^ broken header", "[[rule]  #^", 1);
    check(&text, "toml", "invalid model file");
}

#[test]
fn unknown_key_is_reported_where_it_is() {
    let text = model("\n[[status]]\nname = \"X\"\ndefinishun = \"typo\" #^\n");
    let d = check(&text, "toml", "unknown field");
    assert!(d.hint.is_some());
}

#[test]
fn cel_syntax_error() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
when = "person.fit >= && true" #^
set_stage = "B"
"#,
    );
    check(&text, "cel-syntax", "CEL syntax error");
}

#[test]
fn cel_unknown_field_with_suggestion_and_column() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
when = "person.titel == 'CEO'" #^
set_stage = "B"
"#,
    );
    let d = check(&text, "cel-unknown-field", "unknown field `person.titel`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `person.title`?"));
    // `when = "` is 8 characters: the expression starts at column 9; `person.titel` is a
    // selection whose position is the dot or the start, both inside the expression.
    assert!(
        d.column >= 9 && d.column <= 9 + "person.titel".len(),
        "{d:?}"
    );
}

#[test]
fn cel_unknown_variable() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
when = "persn.fit > 3" #^
set_stage = "B"
"#,
    );
    let d = check(&text, "cel-unknown-field", "unknown variable `persn`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `person`?"));
}

#[test]
fn cel_type_error_number_against_string() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
when = 'person.employees > "x"' #^
set_stage = "B"
"#,
    );
    check(&text, "cel-type", "cannot order a number against a string");
}

#[test]
fn cel_condition_must_be_bool() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
when = "person.employees + 1.0" #^
set_stage = "B"
"#,
    );
    check(&text, "cel-type", "must be a bool");
}

#[test]
fn cel_unknown_stage_literal() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
when = 'person.stage == "BB"' #^
set_stage = "B"
"#,
    );
    check(&text, "unknown-stage", "unknown stage `BB` in condition");
}

#[test]
fn fit_rules_cannot_read_activity() {
    let text = model(
        r#"
[[score.fit]]
when = 'activity.kind == "x"' #^
points = 3
"#,
    );
    check(&text, "cel-unknown-field", "not available in fit rules");
}

#[test]
fn unknown_stage_name() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
set_stage = "BB" #^
"#,
    );
    let d = check(&text, "unknown-stage", "unknown stage `BB`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `B`?"));
}

#[test]
fn unknown_initial_stage() {
    let text = model("").replace("initial_stage = \"A\"", "initial_stage = \"Z\" #^");
    check(&text, "unknown-stage", "unknown stage `Z`");
}

#[test]
fn unknown_status_name() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
set_status = "Nwe" #^
"#,
    );
    let d = check(&text, "unknown-status", "unknown status `Nwe`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `New`?"));
}

#[test]
fn duplicate_stage_name() {
    let text = model(
        r#"
[[stage]]
name = "B" #^
kind = "terminal"
definition = "again"
"#,
    );
    let d = check(&text, "duplicate-name", "duplicate stage name `B`");
    assert!(d.hint.unwrap().contains("line 17"));
}

#[test]
fn duplicate_rule_name() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
set_stage = "B"

[[rule]]
name = "r" #^
on = "person_created"
set_status = "New"
"#,
    );
    check(&text, "duplicate-name", "duplicate rule name `r`");
}

#[test]
fn unreachable_stage() {
    let text = model(
        r#"
[[stage]]
name = "Island" #^
kind = "terminal"
definition = "nobody gets here"
"#,
    );
    check(
        &text,
        "unreachable-stage",
        "stage `Island` cannot be reached",
    );
}

#[test]
fn dead_end_stage() {
    let text = model("").replace(
        "name = \"B\"\nkind = \"active\"\ndefinition = \"second\"\nnext = [\"C\"]",
        "name = \"B\" #^\nkind = \"active\"\ndefinition = \"second\"",
    );
    check(
        &text,
        "dead-end",
        "stage `B` is not terminal but has no way out",
    );
}

#[test]
fn coupling_maps_disagree() {
    // Entering B sets status Done, but Done moves people to C.
    let text = model(
        r#"
[[status]]
name = "Done"
definition = "done"
stage = "C"
"#,
    )
    .replace(
        "definition = \"second\"\nnext = [\"C\"]",
        "definition = \"second\"\nnext = [\"C\"]\nstatus = \"Done\" #^",
    );
    check(
        &text,
        "coupling-conflict",
        "entering stage `B` sets status `Done`",
    );
}

#[test]
fn status_couples_to_stage_that_cannot_follow() {
    // Sales may set Back while people are in C, but Back moves them to A, and A cannot
    // follow C (C is terminal, with no way back).
    let text = model(
        r#"
[[status]]
name = "Back"
definition = "back to the start"
stage = "A"
set_in = ["B", "C"] #^
"#,
    );
    check(&text, "coupling-unreachable", "which cannot follow `C`");
}

#[test]
fn rule_status_couples_to_stage_that_cannot_follow() {
    let text = model(
        r#"
[[status]]
name = "Back"
definition = "back to the start"
stage = "A"

[[rule]]
name = "rewind"
on = "stage"
stage = ["B"]
set_status = "Back" #^
"#,
    );
    check(
        &text,
        "coupling-unreachable",
        "rule `rewind` moves people from `B` to `A`",
    );
}

#[test]
fn rule_moves_along_a_transition_that_is_not_allowed() {
    let text = model(
        r#"
[[rule]]
name = "jump"
on = "activity"
set_stage = "A" #^
only_from = ["B"]
"#,
    );
    check(
        &text,
        "transition-not-allowed",
        "rule `jump` moves people from `B` to `A`",
    );
}

#[test]
fn conflicting_rules_without_priority() {
    let text = model(
        r#"
[[rule]]
name = "to-b"
on = "activity"
activity = ["demo_request"]
set_stage = "B"

[[rule]]
name = "to-c" #^
on = "activity"
set_stage = "C"
"#,
    );
    let d = check(
        &text,
        "rule-conflict",
        "rules `to-b` and `to-c` can fire on the same event",
    );
    assert!(d.hint.unwrap().contains("priority"));
}

#[test]
fn priorities_resolve_a_conflict() {
    let text = model(
        r#"
[[rule]]
name = "to-b"
on = "activity"
activity = ["demo_request"]
priority = 10
set_stage = "B"

[[rule]]
name = "to-c"
on = "activity"
set_stage = "C"
"#,
    );
    if let Err(d) = load("ok.toml", &text) {
        panic!("{}", d.render());
    }
}

#[test]
fn disjoint_triggers_do_not_conflict() {
    let text = model(
        r#"
[[rule]]
name = "to-b"
on = "activity"
activity = ["demo_request"]
set_stage = "B"

[[rule]]
name = "to-c"
on = "activity"
activity = ["web_visit"]
set_stage = "C"
"#,
    );
    if let Err(d) = load("ok.toml", &text) {
        panic!("{}", d.render());
    }
}

#[test]
fn lost_outcome_not_stated() {
    let text = model("").replace(
        "[outcome.expansion]\nlost = {}",
        "[outcome.expansion] #^\nwon = {}",
    );
    let d = check(
        &text,
        "lost-outcome-missing",
        "what a lost expansion opportunity does is not stated",
    );
    assert!(d.hint.unwrap().contains("lost = {"));
}

#[test]
fn lost_outcome_of_a_kind_not_stated_at_all() {
    let text = model("").replace("[outcome.renewal]\nlost = {}\n", "");
    let text = text.replacen("[outcome.new_business]", "[outcome.new_business] #^", 1);
    check(&text, "lost-outcome-missing", "lost renewal");
}

#[test]
fn timer_on_a_stage_that_can_never_be_entered() {
    let text = model(
        r#"
[[stage]]
name = "Island"
kind = "terminal"
definition = "nobody gets here"

[[rule]]
name = "stale"
on = "timer"
in_stage = "Island" #^
after = "3 business_days"
set_status = "New"
"#,
    );
    check(
        &text,
        "timer-never-entered",
        "waits in stage `Island`, which can never be entered",
    );
}

#[test]
fn timer_on_a_status_nothing_sets() {
    let text = model(
        r#"
[[status]]
name = "Ghost"
definition = "set by nobody"
set_by = ["automation"]

[[rule]]
name = "haunt"
on = "timer"
in_status = "Ghost" #^
after = "2 days"
set_stage = "C"
"#,
    );
    check(&text, "timer-never-entered", "waits in status `Ghost`");
}

#[test]
fn misplaced_trigger_key() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
in_stage = "A" #^
set_stage = "B"
"#,
    );
    check(&text, "misplaced-key", "`in_stage` does not apply");
}

#[test]
fn bad_duration() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "timer"
in_stage = "A"
after = "three weeks" #^
set_stage = "B"
"#,
    );
    check(&text, "bad-value", "cannot read the duration");
}

#[test]
fn rule_that_does_nothing() {
    let text = model(
        r#"
[[rule]]
name = "idle" #^
on = "activity"
"#,
    );
    check(
        &text,
        "rule-does-nothing",
        "sets neither a stage nor a status",
    );
}

#[test]
fn status_only_sales_may_set() {
    let text = model(
        r#"
[[status]]
name = "Handpicked"
definition = "sales only"
set_by = ["sales"]

[[rule]]
name = "auto"
on = "activity"
set_status = "Handpicked" #^
"#,
    );
    check(&text, "status-not-automatic", "which only sales may set");
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = model(
        r#"
[[rule]]
name = "r1"
on = "activity"
set_stage = "Nope"

[[rule]]
name = "r2"
on = "activity"
when = "person.nope > 1"
set_status = "Nada"
"#,
    );
    let d = load("broken.toml", &text).unwrap_err();
    let codes: Vec<&str> = d.items.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"unknown-stage"), "{codes:?}");
    assert!(codes.contains(&"unknown-status"), "{codes:?}");
    assert!(codes.contains(&"cel-unknown-field"), "{codes:?}");
}

#[test]
fn diagnostics_are_a_miette_diagnostic_with_related_items() {
    use miette::Diagnostic as _;
    let text = model("[[rule]]\nname = \"r\"\non = \"activity\"\nset_stage = \"Nope\"\n");
    let d = load("broken.toml", &text).unwrap_err();
    assert!(d.source_code().is_some());
    assert_eq!(d.related().unwrap().count(), d.items.len());
    let s = d.to_string();
    assert!(s.contains("broken.toml"), "{s}");
}

#[test]
fn plain_rendering_points_at_the_whole_offending_text() {
    let text = model(
        r#"
[[rule]]
name = "r"
on = "activity"
when = "person.titel == 'CEO'"
set_stage = "B"
"#,
    );
    let d = load("broken.toml", &text).unwrap_err();
    let expected = "\
error[cel-unknown-field]: unknown field `person.titel`
  --> broken.toml:34:9
   |
34 | when = \"person.titel == 'CEO'\"
   |         ^^^^^^^^^^^^
   = hint: did you mean `person.title`?

broken.toml: 1 error, 0 warnings
";
    assert_eq!(d.render(), expected);
}

#[test]
fn rule_disagreeing_with_an_opportunity_outcome() {
    let text = model(
        r#"
[[rule]]
name = "lost-upsell-recycles" #^
on = "opportunity"
opportunity = "lost"
opportunity_kinds = ["expansion"]
set_stage = "B"
"#,
    )
    .replace(
        "[outcome.expansion]\nlost = {}",
        "[outcome.expansion]\nlost = { stage = \"C\" }",
    );
    let d = check(
        &text,
        "rule-conflict",
        "the `lost` outcome of expansion opportunities",
    );
    assert!(d.hint.unwrap().contains("priority"));
}

#[test]
fn overlapping_timers_conflict() {
    let text = model(
        r#"
[[status]]
name = "Later"
definition = "later"

[[rule]]
name = "t1"
on = "timer"
in_stage = "B"
after = "3 days"
set_status = "New"

[[rule]]
name = "t2" #^
on = "timer"
in_stage = "B"
after = "3 days"
set_status = "Later"

[[rule]]
name = "t3"
on = "timer"
in_stage = "B"
after = "4 days"
set_status = "Later"
"#,
    );
    let d = load("broken.toml", &text).unwrap_err();
    let conflicts: Vec<_> = d
        .items
        .iter()
        .filter(|i| i.code == "rule-conflict")
        .collect();
    assert_eq!(conflicts.len(), 1, "{}", d.render());
    check(&text, "rule-conflict", "rules `t1` and `t2`");
}

#[test]
fn roles_and_routing_load() {
    let text = model(
        r#"
[[role]]
name = "decision_maker"
when = 'person.title == "CEO"'
required = true

[[role]]
name = "champion"

[routing]
on_stage = "B"
account_owner_first = true
default_pool = ["r1", "r2"]

[[routing.territory]]
name = "big"
when = "person.employees > 1000"
pool = ["r3"]
"#,
    );
    let m = load("ok.toml", &text).unwrap_or_else(|d| panic!("{}", d.render()));
    assert_eq!(m.roles.len(), 2);
    assert!(m.roles[0].required && m.roles[1].condition.is_none());
    let r = m.routing.as_ref().unwrap();
    assert_eq!(r.on_stage, m.stage_id("B").unwrap());
    assert_eq!(r.owner_attr, "owner");
    assert_eq!(r.territories[0].pool, ["r3"]);
}

#[test]
fn role_condition_is_checked_like_a_fit_rule() {
    let text = model("\n[[role]]\nname = \"x\"\nwhen = 'person.titel == \"CEO\"' #^\n");
    check(&text, "cel-unknown-field", "person.titel");
}

#[test]
fn duplicate_roles_are_rejected() {
    let text = model("\n[[role]]\nname = \"x\"\n[[role]]\nname = \"x\" #^\n");
    check(&text, "duplicate-name", "x");
}

#[test]
fn routing_needs_a_known_stage_and_non_empty_pools() {
    let text = model("\n[routing]\non_stage = \"MQLL\" #^\n");
    check(&text, "unknown-stage", "MQLL");
    let text = model(
        "\n[routing]\non_stage = \"B\"\n[[routing.territory]]\nname = \"t\"\nwhen = \"true\"\npool = [] #^\n",
    );
    check(&text, "bad-value", "empty pool");
}

#[test]
fn round_robin_is_a_stable_hash_of_the_person() {
    use waterfall_model::Routing;
    let pool: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    assert_eq!(Routing::pick(&pool, "p1"), Routing::pick(&pool, "p1"));
    assert_eq!(Routing::pick(&[], "p1"), None);
    let picked: std::collections::BTreeSet<_> = (0..30)
        .filter_map(|i| Routing::pick(&pool, &format!("p{i}")))
        .collect();
    assert_eq!(picked.len(), 3, "every rep of the pool gets people");
}

#[test]
fn an_account_rule_must_follow_the_account_stages_next() {
    let text = model(
        r#"
[[account_stage]]
name = "T"
kind = "active"
next = ["E"]

[[account_stage]]
name = "E"
kind = "terminal"

[[account_rule]]
name = "back"
when = "account.engaged_people == 0"
set_stage = "T"
only_from = ["E"] #^
"#,
    )
    .replacen(
        "initial_status = \"New\"",
        "initial_status = \"New\"\ninitial_account_stage = \"T\"",
        1,
    );
    check(&text, "transition-not-allowed", "account rule `back`");
}

#[test]
fn matching_rejects_an_unknown_tie_break() {
    let text = model("\n[matching]\ntie_break = \"biggest\" #^\n");
    let d = check(&text, "bad-value", "unknown tie-break rule `biggest`");
    assert!(d.hint.unwrap().contains("most_people"));
}

#[test]
fn matching_rejects_a_confidence_outside_zero_to_one() {
    let text = model("\n[matching]\nmin_confidence = 85 #^\n");
    check(&text, "bad-value", "between 0 and 1");
}

#[test]
fn matching_rejects_an_unknown_match_key() {
    let text = model("\n[matching]\nmatch_on = [\n  \"domain\",\n  \"phone\", #^\n]\n");
    check(&text, "bad-value", "unknown match key `phone`");
}

#[test]
fn matching_section_compiles_into_the_policy() {
    use waterfall_model::TieBreak;
    let text = model(
        "\n[matching]\ntie_break = \"oldest\"\nmin_confidence = 0.9\nmatch_on = [\"company\"]\nfree_mail = [\"ISP.example\"]\nignore_plus_addressing = false\n",
    );
    let m = load("ok.toml", &text).unwrap_or_else(|d| panic!("{}", d.render()));
    let p = &m.matching;
    assert!(p.enabled && p.dedup.merge_duplicates);
    assert!(!p.by_domain && p.by_company);
    assert_eq!(p.tie_break, TieBreak::Oldest);
    assert_eq!(p.min_confidence, 0.9);
    assert_eq!(p.extra_free_mail, vec!["isp.example".to_string()]);
    assert!(!p.dedup.ignore_plus_addressing);
    // Without the section nothing is matched or merged.
    let m = load("ok.toml", &model("")).unwrap();
    assert!(!m.matching.is_active());
}
