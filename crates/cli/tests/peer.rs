//! The contract reports agree, row by row, with an independent implementation: DuckDB SQL over
//! the same raw events (`shared/bench/peer_duckdb.py`), compared by `compare_reports.py`.
//!
//! Needs `python3` with the `duckdb` package (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().expect("command runs");
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn compare(dir: &Path, events: &Path, db: &Path, args: &[&str]) {
    let expected = ok(Command::new("python3")
        .arg(shared().join("bench/peer_duckdb.py"))
        .arg(events)
        .args(args));
    let actual = ok(Command::new(env!("CARGO_BIN_EXE_waterfall"))
        .arg("report")
        .args(args)
        .args(["--format", "json", "--db"])
        .arg(db));
    let (e, a) = (dir.join("expected.json"), dir.join("actual.json"));
    std::fs::write(&e, expected).unwrap();
    std::fs::write(&a, actual).unwrap();
    let o = Command::new("python3")
        .arg(shared().join("bench/compare_reports.py"))
        .arg(&e)
        .arg(&a)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "report {args:?} differs from the DuckDB peer:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn contract_reports_match_the_duckdb_peer_on_generated_data() {
    for (accounts, seed) in [(60u32, 1u32), (250, 7), (400, 42)] {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.jsonl");
        let gen = ok(Command::new("python3")
            .arg(shared().join("bench/gen_events.py"))
            .args([
                "--accounts",
                &accounts.to_string(),
                "--seed",
                &seed.to_string(),
            ]));
        std::fs::write(&events, gen).unwrap();
        let db = dir.path().join("w.db");
        ok(Command::new(env!("CARGO_BIN_EXE_waterfall"))
            .args(["ingest", "--model", "history-only", "--db"])
            .arg(&db)
            .arg(&events));
        for by in [None, Some("source")] {
            let by: Vec<&str> = by.map(|b| vec!["--by", b]).unwrap_or_default();
            for period in ["month", "week", "quarter", "year"] {
                let mut args = vec!["flow", "--period", period];
                args.extend(&by);
                compare(dir.path(), &events, &db, &args);
            }
            for (stage, period) in [("MQL", "month"), ("SAL", "quarter"), ("MRL", "month")] {
                let mut args = vec!["cohort", "--stage", stage, "--period", period];
                args.extend(&by);
                compare(dir.path(), &events, &db, &args);
            }
            let mut args = vec![
                "cohort",
                "--stage",
                "MQL",
                "--period",
                "month",
                "--as-of",
                "2025-03-01T00:00:00Z",
            ];
            args.extend(&by);
            compare(dir.path(), &events, &db, &args);
            for as_of in [
                "2024-06-30T00:00:00Z",
                "2025-07-01T00:00:00Z",
                "2030-01-01T00:00:00Z",
            ] {
                let mut args = vec!["snapshot", "--as-of", as_of];
                args.extend(&by);
                compare(dir.path(), &events, &db, &args);
            }
        }
    }
}
