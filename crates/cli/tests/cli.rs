//! End-to-end tests of the `waterfall` binary: real processes, real SQLite files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_waterfall"))
}

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// Generates events with the shared generator into `dir`.
fn generate(dir: &Path, accounts: u32, seed: u32) -> PathBuf {
    let path = dir.join(format!("events-{accounts}-{seed}.jsonl"));
    let out = Command::new("python3")
        .arg(shared().join("bench/gen_events.py"))
        .args([
            "--accounts",
            &accounts.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .output()
        .expect("python3 runs the shared generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The generator numbers ids from e1 in every file: make them unique per file.
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace(r#""id":"e"#, &format!(r#""id":"s{seed}-"#));
    std::fs::write(&path, text).unwrap();
    path
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("waterfall runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn count(db: &Path, what: &str) -> u64 {
    // `show`-free check straight on the file: how many events are stored.
    let conn_out = Command::new("python3")
        .args(["-c", &format!("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('{what}').fetchone()[0])"), db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        conn_out.status.success(),
        "{}",
        String::from_utf8_lossy(&conn_out.stderr)
    );
    String::from_utf8_lossy(&conn_out.stdout)
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn bad_lines_are_reported_with_their_location_and_good_lines_stored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.jsonl");
    std::fs::write(
        &file,
        r#"{"id":"1","at":"2025-01-01T00:00:00Z","type":"person","person":"p1"}
{"id":"2","at":"2025-01-02T00:00:00Z","type":"stage","person":"p1","stage":"Lead"}
not json
{"id":"4","at":"yesterday","type":"person","person":"p2"}
{"id":"5","at":"2025-01-03T00:00:00Z","type":"stage","person":"p1","stage":"MQL"}
"#,
    )
    .unwrap();
    let db = dir.path().join("w.db");
    let strict = run(bin()
        .args(["ingest", "--strict", "--model", "history-only", "--db"])
        .arg(&db)
        .arg(&file));
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
    assert!(
        !db.exists() || count(&db, "SELECT COALESCE(SUM(count), 0) FROM partition_events") == 0
    );

    let o = run(bin()
        .args(["ingest", "--model", "history-only", "--db"])
        .arg(&db)
        .arg(&file));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("mixed.jsonl:2: unknown stage \"Lead\""), "{t}");
    assert!(t.contains("mixed.jsonl:3: invalid JSON"), "{t}");
    assert!(t.contains("mixed.jsonl:4: bad timestamp"), "{t}");
    assert_eq!(
        count(&db, "SELECT COALESCE(SUM(count), 0) FROM partition_events"),
        2
    );
    let show = run(bin().args(["show", "person", "p1", "--db"]).arg(&db));
    assert!(text(&show).contains("stage     MQL"), "{}", text(&show));
}

#[test]
fn an_acknowledged_ingest_survives_kill_9_and_a_killed_one_leaves_nothing_half_done() {
    let dir = tempfile::tempdir().unwrap();
    let first = generate(dir.path(), 30, 1);
    let second = generate(dir.path(), 1500, 2);
    let db = dir.path().join("w.db");
    let o = run(bin()
        .args(["ingest", "--model", "history-only", "--db"])
        .arg(&db)
        .arg(&first));
    assert!(o.status.success(), "{}", text(&o));
    let acknowledged = count(&db, "SELECT COALESCE(SUM(count), 0) FROM partition_events");
    let transitions = count(&db, "SELECT COALESCE(SUM(count), 0) FROM transitions");
    assert!(acknowledged > 1000);
    let total_second = std::fs::read_to_string(&second).unwrap().lines().count() as u64;
    for delay_ms in [50u64, 300, 900, 2000] {
        let mut child = bin()
            .args(["ingest", "--db"])
            .arg(&db)
            .arg(&second)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        let events = count(&db, "SELECT COALESCE(SUM(count), 0) FROM partition_events");
        // All or nothing: the acknowledged batch is intact, the killed one fully in or fully out.
        assert!(
            events == acknowledged || events == acknowledged + total_second,
            "after kill at {delay_ms}ms: {events} events (acknowledged {acknowledged}, batch {total_second}, finished {finished})"
        );
        if events == acknowledged {
            assert_eq!(
                count(&db, "SELECT COALESCE(SUM(count), 0) FROM transitions"),
                transitions
            );
        }
    }
    let o = run(bin().args(["ingest", "--db"]).arg(&db).arg(&second));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        count(&db, "SELECT COALESCE(SUM(count), 0) FROM partition_events"),
        acknowledged + total_second
    );
}

#[test]
fn a_database_remembers_its_model() {
    let dir = tempfile::tempdir().unwrap();
    let f = generate(dir.path(), 5, 3);
    let db = dir.path().join("w.db");
    assert!(run(bin()
        .args(["ingest", "--model", "history-only", "--db"])
        .arg(&db)
        .arg(&f))
    .status
    .success());
    let o = run(bin()
        .args(["ingest", "--model", "demand-waterfall", "--db"])
        .arg(&db)
        .arg(&f));
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("waterfall replay"), "{}", text(&o));
    let o = run(bin().args(["ingest", "--db"]).arg(&db).arg(&f));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 new"), "{}", text(&o));
}

#[test]
fn the_account_waterfall_and_an_account_with_its_buying_group() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("story.jsonl");
    std::fs::write(
        &file,
        r#"{"id":"1","at":"2025-01-01T00:00:00Z","type":"account","account":"a1","attrs":{"name":"Acme","industry":"software","employees":800,"region":"EMEA"}}
{"id":"2","at":"2025-01-02T00:00:00Z","type":"person","person":"p1","account":"a1","attrs":{"title":"VP Marketing","seniority":"vp","department":"marketing"}}
{"id":"3","at":"2025-01-02T00:00:00Z","type":"person","person":"p2","account":"a1","attrs":{"title":"Analyst","seniority":"ic","department":"marketing"}}
{"id":"4","at":"2025-01-06T10:00:00Z","type":"activity","person":"p1","kind":"demo_request"}
{"id":"5","at":"2025-01-06T11:00:00Z","type":"activity","person":"p2","kind":"webinar_attended"}
"#,
    )
    .unwrap();
    let db = dir.path().join("w.db");
    let o = run(bin().args(["ingest", "--db"]).arg(&db).arg(&file));
    assert!(o.status.success(), "{}", text(&o));
    let flow = run(bin()
        .args([
            "report", "flow", "--level", "account", "--format", "csv", "--db",
        ])
        .arg(&db));
    let t = text(&flow);
    assert!(flow.status.success(), "{t}");
    assert!(t.contains("MQA"), "{t}");
    let snap = run(bin()
        .args([
            "report", "snapshot", "--level", "account", "--format", "json",
        ])
        .args(["--as-of", "2025-01-07", "--db"])
        .arg(&db));
    assert!(text(&snap).contains("\"MQA\""), "{}", text(&snap));
    // By now nobody engaged for 90 days: the account was recycled (by a timer).
    let now = run(bin()
        .args([
            "report", "snapshot", "--level", "account", "--format", "json", "--db",
        ])
        .arg(&db));
    assert!(text(&now).contains("\"Recycled\""), "{}", text(&now));
    let show = run(bin()
        .args(["show", "account", "a1", "--as-of", "2025-01-07", "--db"])
        .arg(&db));
    let t = text(&show);
    assert!(t.contains("stage     MQA"), "{t}");
    assert!(t.contains("decision_maker"), "{t}");
    assert!(t.contains("missing"), "{t}");
    assert!(t.contains("rule `mqa`"), "{t}");
    let person = run(bin().args(["show", "person", "p1", "--db"]).arg(&db));
    assert!(
        text(&person).contains("routing: territory EMEA"),
        "{}",
        text(&person)
    );
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let o = run(bin()
        .args(["demo", "--accounts", "200", "--db"])
        .arg(&db)
        .arg("--events")
        .arg(dir.path().join("demo.jsonl")));
    assert!(o.status.success(), "{}", text(&o));
    // Far more output than a pipe holds, read one chunk of, then the pipe closes.
    let mut child = bin()
        .args([
            "report", "flow", "--period", "week", "--by", "email", "--format", "csv", "--db",
        ])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn why_says_when_the_model_kept_the_stage_from_following_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("story.jsonl");
    std::fs::write(
        &file,
        r#"{"id":"1","at":"2025-01-01T00:00:00Z","type":"person","person":"p1"}
{"id":"2","at":"2025-01-02T00:00:00Z","type":"status","person":"p1","status":"Disqualified","reason":"student"}
{"id":"3","at":"2025-01-03T00:00:00Z","type":"status","person":"p1","status":"Working","by":"rep7"}
"#,
    )
    .unwrap();
    let db = dir.path().join("w.db");
    let o = run(bin().args(["ingest", "--db"]).arg(&db).arg(&file));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(bin().args(["why", "person", "p1", "--db"]).arg(&db));
    let t = text(&o);
    assert!(t.contains("p1 is in stage Disqualified"), "{t}");
    assert!(t.contains("Their status is Working"), "{t}");
    assert!(
        t.contains("Status Working would move them to SAL, but the model does not allow Disqualified → SAL"),
        "{t}"
    );
}

/// Runs one SQL statement straight on the file, as another program would.
fn execute(db: &Path, statement: &str) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
        ])
        .arg(db)
        .arg(statement)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// The three person-stage reports of a database, as JSON text.
fn stage_reports(db: &Path) -> Vec<String> {
    [
        vec!["flow", "--period", "month"],
        vec!["cohort", "--stage", "MQL", "--period", "month"],
        vec!["snapshot", "--as-of", "2030-01-01"],
    ]
    .iter()
    .map(|args| {
        let out = run(bin()
            .arg("report")
            .args(args)
            .args(["--format", "json", "--db"])
            .arg(db));
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    })
    .collect()
}

#[test]
fn reports_from_the_stage_index_equal_reports_from_the_stored_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (generate(dir.path(), 30, 1), generate(dir.path(), 30, 2));
    let db = dir.path().join("w.db");
    let ingest = |file: &Path| {
        let out = run(bin()
            .args(["ingest", "--model", "history-only", "--db"])
            .arg(&db)
            .arg(file));
        assert!(out.status.success(), "{}", text(&out));
    };
    let drop_index = || execute(&db, "DELETE FROM stage_index");
    // The first load builds the index as it writes; without one, the first report builds
    // it from the stored transitions, and the next ones read it.
    ingest(&a);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM stage_index"), 1);
    let built_by_ingest = stage_reports(&db);
    drop_index();
    let from_transitions = stage_reports(&db);
    assert_eq!(
        built_by_ingest, from_transitions,
        "the ingest's index and stored transitions disagree"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM stage_index"), 1);
    let indexed = stage_reports(&db);
    assert_eq!(
        indexed, from_transitions,
        "index and stored transitions disagree"
    );
    drop_index();
    assert_eq!(stage_reports(&db), indexed);
    // A later ingest makes the old index stale; its reports equal a fresh database's.
    ingest(&b);
    let after = stage_reports(&db);
    let fresh = dir.path().join("fresh.db");
    let out = run(bin()
        .args(["ingest", "--model", "history-only", "--db"])
        .arg(&fresh)
        .arg(&a)
        .arg(&b));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(after, stage_reports(&fresh));
    drop_index();
    assert_eq!(stage_reports(&db), after);
    // A replay under another model builds its index as it writes, too.
    let out = run(bin()
        .args(["replay", "--model", "demand-waterfall", "--db"])
        .arg(&db));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM stage_index"), 1);
    let built_by_replay = stage_reports(&db);
    drop_index();
    assert_eq!(built_by_replay, stage_reports(&db));
    assert_ne!(built_by_replay, after, "the replay changed nothing");
}

#[test]
fn a_first_load_killed_midway_leaves_an_empty_database_that_loads_again() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(dir.path(), 1500, 3);
    let total = std::fs::read_to_string(&events).unwrap().lines().count() as u64;
    for delay_ms in [300u64, 900] {
        let db = dir.path().join(format!("first-{delay_ms}.db"));
        let mut child = bin()
            .args(["ingest", "--model", "history-only", "--db"])
            .arg(&db)
            .arg(&events)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().ok(); // SIGKILL, in the middle of the first load (a rollback journal)
        child.wait().unwrap();
        if db.exists() {
            let stored = count(&db, "SELECT COALESCE(SUM(count), 0) FROM partition_events");
            assert!(stored == 0 || stored == total, "{stored} of {total} events");
        }
        let o = run(bin()
            .args(["ingest", "--model", "history-only", "--db"])
            .arg(&db)
            .arg(&events));
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(
            count(&db, "SELECT COALESCE(SUM(count), 0) FROM partition_events"),
            total
        );
        let mode = run(Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('pragma journal_mode').fetchone()[0])",
            ])
            .arg(&db));
        assert_eq!(String::from_utf8_lossy(&mode.stdout).trim(), "wal");
    }
}

#[test]
fn the_same_events_in_time_order_give_the_same_reports() {
    // The generator writes each account's events together; a CRM export is usually sorted
    // by time. Under the default model (matching, merges, automation), both orders must
    // store the same history.
    let dir = tempfile::tempdir().unwrap();
    let generated = generate(dir.path(), 40, 3);
    let mut lines: Vec<String> = std::fs::read_to_string(&generated)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let at = |line: &str| {
        let i = line.find(r#""at":""#).expect("every event has an instant") + 6;
        line[i..i + 20].to_string()
    };
    lines.sort_by_key(|l| at(l));
    let sorted = dir.path().join("sorted.jsonl");
    std::fs::write(&sorted, lines.join("\n") + "\n").unwrap();
    let reports = |file: &Path, name: &str| {
        let db = dir.path().join(name);
        let out = run(bin().args(["ingest", "--db"]).arg(&db).arg(file));
        assert!(out.status.success(), "{}", text(&out));
        stage_reports(&db)
    };
    assert_eq!(
        reports(&generated, "generated.db"),
        reports(&sorted, "sorted.db")
    );
}

#[test]
fn a_contact_without_a_company_is_one_person_with_the_deals_account() {
    // A HubSpot export: a contact with no company, on a won deal. One person, the deal's
    // account's, a customer: not a contact copy in the deal's account and an MQL elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deal.jsonl");
    std::fs::write(
        &file,
        r#"{"id":"1","at":"2025-01-02T00:00:00Z","type":"person","person":"c1","attrs":{"email":"c1@gmail.example"}}
{"id":"2","at":"2025-01-03T00:00:00Z","type":"stage","person":"c1","stage":"MQL"}
{"id":"3","at":"2025-02-01T00:00:00Z","type":"opportunity","opportunity":"d1","account":"acme","state":"open","contacts":[{"person":"c1","role":"champion"}]}
{"id":"4","at":"2025-03-01T00:00:00Z","type":"opportunity","opportunity":"d1","state":"won"}
"#,
    )
    .unwrap();
    let db = dir.path().join("w.db");
    let o = run(bin().args(["ingest", "--db"]).arg(&db).arg(&file));
    assert!(o.status.success(), "{}", text(&o));
    let show = text(&run(bin().args(["show", "person", "c1", "--db"]).arg(&db)));
    assert!(show.contains("account   acme"), "{show}");
    assert!(
        show.contains("contact   of deal d1 since 2025-02-01"),
        "{show}"
    );
    assert!(show.contains("stage     Customer"), "{show}");
    let snapshot = run(bin()
        .args([
            "report",
            "snapshot",
            "--format",
            "json",
            "--as-of",
            "2025-06-01",
            "--db",
        ])
        .arg(&db));
    let j: serde_json::Value = serde_json::from_slice(&snapshot.stdout).unwrap();
    assert_eq!(
        j["rows"],
        serde_json::json!([{"people": 1, "stage": "Customer"}]),
        "{j}"
    );
}
