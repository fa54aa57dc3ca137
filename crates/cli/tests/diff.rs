//! `waterfall diff` end to end: the real binary on a real demo database.
//!
//! The diff's numbers are checked against the slow, obvious way to get them: copy the
//! database, `waterfall replay` it under each model, and run the reports on both copies.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_waterfall"))
}

fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/demand-waterfall.toml")
}

#[track_caller]
fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("waterfall runs");
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[track_caller]
fn json(cmd: &mut Command) -> Value {
    let out = ok(cmd);
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// One demo database (150 accounts) shared by the tests, which only read it.
fn demo() -> &'static Path {
    static DB: OnceLock<PathBuf> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let db = dir.join("demo.db");
        ok(bin()
            .args(["demo", "--accounts", "150", "--db"])
            .arg(&db)
            .arg("--events")
            .arg(dir.join("demo.jsonl")));
        db
    })
}

/// The default model, and a copy with a higher MQL engagement bar (40 → 60).
fn raised_model(dir: &Path) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(default_model()).unwrap();
    assert!(text.contains("mql_engagement = 40"));
    let (old, new) = (dir.join("old.toml"), dir.join("new.toml"));
    std::fs::write(&old, &text).unwrap();
    std::fs::write(
        &new,
        text.replace("mql_engagement = 40", "mql_engagement = 60"),
    )
    .unwrap();
    (old, new)
}

/// Copies a database (with its WAL, if any) to `to`.
fn copy_db(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    for ext in ["-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{ext}", from.display()));
        if f.exists() {
            std::fs::copy(&f, format!("{}{ext}", to.display())).unwrap();
        }
    }
}

/// Entries per (period, stage) of `waterfall report flow`.
fn flow_cells(db: &Path, as_of: &str) -> BTreeMap<(String, String), i64> {
    let j = json(
        bin()
            .args(["report", "flow", "--format", "json", "--period", "month"])
            .args(["--as-of", as_of, "--db"])
            .arg(db),
    );
    j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (
                    r["period"].as_str().unwrap().to_string(),
                    r["stage"].as_str().unwrap().to_string(),
                ),
                r["entries"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Cohort sizes per period of `waterfall report cohort --stage MQL`.
fn cohort_sizes(db: &Path, as_of: &str) -> BTreeMap<String, i64> {
    let j = json(
        bin()
            .args(["report", "cohort", "--format", "json", "--stage", "MQL"])
            .args(["--as-of", as_of, "--db"])
            .arg(db),
    );
    j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["period"].as_str().unwrap().to_string(),
                r["size"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// SLA breaches in all of `waterfall report sla` (the stored model's timer rules).
fn sla_total(db: &Path, as_of: &str) -> i64 {
    let j = json(
        bin()
            .args([
                "report", "sla", "--format", "json", "--as-of", as_of, "--db",
            ])
            .arg(db),
    );
    j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["breaches"].as_i64().unwrap())
        .sum()
}

fn diff_json(db: &Path, old: &Path, new: &Path) -> Value {
    json(
        bin()
            .args(["diff", "--format", "json", "--db"])
            .arg(db)
            .arg(old)
            .arg(new),
    )
}

fn is_empty(v: &Value) -> bool {
    v.as_array().is_some_and(|a| a.is_empty())
}

#[test]
fn an_unchanged_model_shows_no_difference() {
    let db = demo();
    let model = default_model();
    let j = diff_json(db, &model, &model);
    for key in [
        "definitions",
        "moves",
        "account_moves",
        "flow",
        "cohort",
        "transitions",
        "sla",
    ] {
        assert!(is_empty(&j[key]), "{key}: {}", j[key]);
    }
    assert_eq!(j["sla_breaches"]["delta"], 0);
    assert!(j["sla_breaches"]["before"].as_u64().unwrap() > 0);
    let out = ok(bin()
        .arg("diff")
        .arg("--db")
        .arg(db)
        .arg(&model)
        .arg(&model));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("the same lifecycle over this event log"),
        "{table}"
    );
    assert!(table.contains("0 definition changes"), "{table}");
}

#[test]
fn a_raised_mql_bar_shows_fewer_mqls_with_the_exact_deltas_of_two_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = raised_model(dir.path());
    // `replay` derives up to the clock, the diff up to the latest event (the demo's log runs
    // to the end of 2026): compare both as of an instant already past.
    let as_of = "2026-06-30T00:00:00Z";
    let j = json(
        bin()
            .args(["diff", "--format", "json", "--as-of", as_of, "--db"])
            .arg(demo())
            .arg(&old)
            .arg(&new),
    );
    assert_eq!(j["as_of"], as_of);

    // The definitions: the threshold and the two rules that cross it, with their lines.
    let defs = j["definitions"].as_array().unwrap();
    let threshold = defs
        .iter()
        .find(|d| d["section"] == "threshold")
        .expect("the threshold change is listed");
    assert_eq!(threshold["name"], "mql_engagement");
    assert_eq!(threshold["kind"], "changed");
    assert_eq!(threshold["details"][0], "value: 40 → 60");
    let text = std::fs::read_to_string(&old).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("mql_engagement"))
        .unwrap()
        + 1;
    assert_eq!(threshold["old_line"], line);
    assert_eq!(threshold["new_line"], line);
    assert!(defs
        .iter()
        .any(|d| d["section"] == "rule" && d["name"] == "mql-by-engagement"));

    // Fewer MQLs.
    let mql_delta: i64 = j["flow"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["stage"] == "MQL")
        .map(|r| r["delta"].as_i64().unwrap())
        .sum();
    assert!(mql_delta < 0, "MQL entries should fall: {}", j["flow"]);
    assert!(j["moves"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["after"] == "MAL" && m["people"].as_u64().unwrap() > 0));
    let vanished = j["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["change"] == "vanishes" && g["rule"] == "mql-by-engagement")
        .expect("MQLs by engagement vanish");
    let why = vanished["examples"][0]["why"].as_str().unwrap();
    assert!(
        why.starts_with("rule `mql-by-engagement`, on event "),
        "{why}"
    );

    // The same numbers the slow way: two full replays of copies of the database.
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    copy_db(demo(), &a);
    copy_db(demo(), &b);
    ok(bin()
        .args(["replay", "--db"])
        .arg(&a)
        .arg("--model")
        .arg(&old));
    ok(bin()
        .args(["replay", "--db"])
        .arg(&b)
        .arg("--model")
        .arg(&new));
    let (fa, fb) = (flow_cells(&a, as_of), flow_cells(&b, as_of));
    let mut expected = Vec::new();
    for key in fa
        .keys()
        .chain(fb.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (x, y) = (
            fa.get(key).copied().unwrap_or(0),
            fb.get(key).copied().unwrap_or(0),
        );
        if x != y {
            expected.push((key.0.clone(), key.1.clone(), x, y, y - x));
        }
    }
    expected.sort();
    let mut actual: Vec<(String, String, i64, i64, i64)> = j["flow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["period"].as_str().unwrap().to_string(),
                r["stage"].as_str().unwrap().to_string(),
                r["before"].as_i64().unwrap(),
                r["after"].as_i64().unwrap(),
                r["delta"].as_i64().unwrap(),
            )
        })
        .collect();
    actual.sort();
    assert!(!expected.is_empty());
    assert_eq!(actual, expected);

    let (ca, cb) = (cohort_sizes(&a, as_of), cohort_sizes(&b, as_of));
    for r in j["cohort"].as_array().unwrap() {
        if r["measure"] == "size" {
            let p = r["period"].as_str().unwrap();
            assert_eq!(
                r["before"].as_i64().unwrap(),
                ca.get(p).copied().unwrap_or(0)
            );
            assert_eq!(
                r["after"].as_i64().unwrap(),
                cb.get(p).copied().unwrap_or(0)
            );
        }
    }
    assert_eq!(
        j["sla_breaches"]["before"].as_i64().unwrap(),
        sla_total(&a, as_of)
    );
    assert_eq!(
        j["sla_breaches"]["after"].as_i64().unwrap(),
        sla_total(&b, as_of)
    );
}

#[test]
fn two_git_revisions_of_a_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let git = |args: &[&str]| {
        ok(Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(repo));
    };
    git(&["init", "-q"]);
    let (old, new) = raised_model(repo);
    std::fs::copy(&old, repo.join("model.toml")).unwrap();
    git(&["add", "model.toml"]);
    git(&["commit", "-qm", "model"]);
    std::fs::copy(&new, repo.join("model.toml")).unwrap();
    git(&["commit", "-qam", "raise the bar"]);
    let j = json(
        bin()
            .args(["diff", "--format", "json", "--db"])
            .arg(demo())
            .args(["--git", "HEAD~1:model.toml", "HEAD:model.toml"])
            .current_dir(repo),
    );
    assert_eq!(j["old"], "HEAD~1:model.toml");
    assert!(j["definitions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["name"] == "mql_engagement"));
    assert!(!is_empty(&j["flow"]));
    // A revision that does not exist is the user's mistake, said plainly.
    let out = bin()
        .args(["diff", "--db"])
        .arg(demo())
        .args(["--git", "nope:model.toml", "HEAD:model.toml"])
        .current_dir(repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("git show nope:model.toml"));
}

#[test]
fn the_stored_database_is_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = raised_model(dir.path());
    let db = dir.path().join("copy.db");
    copy_db(demo(), &db);
    let state = || {
        let (events, transitions) = {
            let out = ok(Command::new("python3").args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
                 print(c.execute('select sum(count) from partition_events').fetchone()[0], \
                 c.execute('select count(*) from transitions').fetchone()[0])",
                db.to_str().unwrap(),
            ]));
            let s = String::from_utf8(out.stdout).unwrap();
            let mut it = s.split_whitespace().map(|x| x.parse::<u64>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        };
        let flow = ok(bin()
            .args(["report", "flow", "--format", "json", "--db"])
            .arg(&db))
        .stdout;
        (events, transitions, flow, std::fs::read(&db).unwrap())
    };
    let before = state();
    diff_json(&db, &old, &new);
    let after = state();
    assert!(before.0 > 0 && before.1 > 0);
    assert_eq!(
        (before.0, before.1, &before.2),
        (after.0, after.1, &after.2)
    );
    assert!(before.3 == after.3, "the database file changed");
}
