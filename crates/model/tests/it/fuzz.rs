//! The loader never panics, whatever the bytes: arbitrary text, mutated shipped models,
//! and the corpus kept in `tests/corpus/` (add any input that ever broke the loader).

use proptest::prelude::*;
use waterfall_model::{load, DEMAND_WATERFALL_TOML, HISTORY_ONLY_TOML};

fn must_not_panic(text: &str) {
    match load("fuzz.toml", text) {
        Ok(m) => {
            let _ = m.to_mermaid();
            let _ = m.to_dot();
        }
        Err(d) => {
            assert!(!d.items.is_empty(), "an error without a diagnostic");
            let _ = d.render();
            for item in &d.items {
                assert!(item.span.end <= text.len());
                assert!(item.line >= 1 && item.column >= 1);
            }
        }
    }
}

#[test]
fn corpus_never_panics() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        must_not_panic(&String::from_utf8_lossy(&bytes));
        n += 1;
    }
    assert!(n > 0, "the corpus is empty");
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, char),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (
            any::<usize>(),
            prop_oneof![
                Just("\"".to_string()),
                Just("[[stage]]\n".to_string()),
                Just("&& ".to_string()),
                Just("person.".to_string()),
                Just("'''".to_string()),
                Just("\n".to_string()),
                Just("é".to_string()),
                Just("= ".to_string()),
                "[a-z_.()\\[\\]\" =]{0,12}",
            ]
        )
            .prop_map(|(a, s)| Mutation::Insert(a, s)),
        (any::<usize>(), any::<char>()).prop_map(|(a, c)| Mutation::Replace(a, c)),
        (any::<usize>(), 1usize..200).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
    ]
}

fn apply(text: &str, muts: &[Mutation]) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for m in muts {
        let len = s.len().max(1);
        match m {
            Mutation::Delete(a, n) => {
                let a = a % len;
                let b = (a + n).min(s.len());
                if a < b {
                    s.drain(a..b);
                }
            }
            Mutation::Insert(a, t) => {
                let a = a % (s.len() + 1);
                for (i, c) in t.chars().enumerate() {
                    s.insert(a + i, c);
                }
            }
            Mutation::Replace(a, c) => {
                if !s.is_empty() {
                    let a = a % s.len();
                    s[a] = *c;
                }
            }
            Mutation::Duplicate(a, n) => {
                let a = a % len;
                let b = (a + n).min(s.len());
                if a < b {
                    let copy: Vec<char> = s[a..b].to_vec();
                    let at = b;
                    for (i, c) in copy.into_iter().enumerate() {
                        s.insert(at + i, c);
                    }
                }
            }
        }
    }
    s.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        must_not_panic(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_default_model_never_panics(muts in proptest::collection::vec(mutation(), 1..4)) {
        must_not_panic(&apply(DEMAND_WATERFALL_TOML, &muts));
    }

    #[test]
    fn mutated_history_model_never_panics(muts in proptest::collection::vec(mutation(), 1..4)) {
        must_not_panic(&apply(HISTORY_ONLY_TOML, &muts));
    }

    #[test]
    fn arbitrary_conditions_never_panic(expr in "[a-z_. ()\\[\\]\"'0-9<>=!&|+*/%-]{0,40}") {
        let text = DEMAND_WATERFALL_TOML.replace(
            "when = \"person.fit >= thresholds.hand_raiser_fit\"",
            &format!("when = '''{expr}'''"),
        );
        must_not_panic(&text);
    }
}

/// Deeply nested conditions are refused with a diagnostic, never a stack overflow, and
/// conditions just under the limit load (or fail) normally.
#[test]
fn deep_conditions_never_overflow_the_stack() {
    for n in [120usize, 100_000] {
        for expr in [
            format!("{}1{}", "(".repeat(n / 2), ")".repeat(n / 2)),
            format!("{}true", "!".repeat(n)),
            format!("1{} > 0", "+1".repeat(n / 2)),
            format!("true{}", "&&true".repeat(n / 6)),
            format!("{}1{} == 1", "[".repeat(n / 2), "]".repeat(n / 2)),
            format!("{}1{} == 1", "{1:".repeat(n / 4), "}".repeat(n / 4)),
            format!("person{}", ".a".repeat(n / 2)),
            format!("{}1{}", "size(".repeat(n / 6), ")".repeat(n / 6)),
        ] {
            let text = DEMAND_WATERFALL_TOML.replace(
                "when = \"person.fit >= thresholds.hand_raiser_fit\"",
                &format!("when = \"{expr}\""),
            );
            must_not_panic(&text);
            if n > 1000 {
                let d = load("deep.toml", &text).unwrap_err();
                assert!(
                    d.items.iter().any(|i| i.code == "cel-too-complex"),
                    "{}",
                    d.render()
                );
            }
        }
    }
    let deep_toml = format!("a = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
    must_not_panic(&deep_toml);
}
