//! Whatever bytes arrive, the event parser answers with an event or a reason — never a panic —
//! and every event it accepts survives a round trip through its canonical JSON.

use proptest::prelude::*;
use waterfall_core::{parse_line, parse_lines};

const VALID: &[&str] = &[
    r#"{"id":"e1","at":"2025-01-03T10:00:00Z","type":"account","account":"a1","attrs":{"name":"Acme","employees":1200}}"#,
    r#"{"id":"e2","at":"2025-01-03T10:00:00+02:00","type":"person","person":"p1","account":"a1","attrs":{"email":"jo@acme.com"}}"#,
    r#"{"id":"e3","at":"2025-01-04T09:12:00.123Z","type":"activity","person":"p1","kind":"demo_request"}"#,
    r#"{"id":"e4","at":"2025-01-05T11:00:00Z","type":"status","person":"p1","status":"Working","by":"rep7"}"#,
    r#"{"id":"e5","at":"2025-01-09T15:00:00Z","type":"opportunity","opportunity":"o1","account":"a1","state":"open","amount":25000,"contacts":[{"person":"p1","role":"champion","primary":true}]}"#,
    r#"{"id":"e6","at":"2025-03-01T08:00:00Z","type":"merge","person":"p2","into":"p1"}"#,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse_line(&text);
        let _ = parse_lines(&text, 1);
    }

    #[test]
    fn mutated_valid_lines_never_panic_and_accepted_ones_round_trip(
        which in 0..VALID.len(),
        cut in 0usize..300,
        insert in "\\PC{0,8}",
    ) {
        let line = VALID[which];
        let cut = cut.min(line.len());
        // Mutate at a character boundary: drop or splice in a few characters.
        let at = (0..=cut).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
        let mutated = format!("{}{}{}", &line[..at], insert, &line[at..]);
        if let Ok(ev) = parse_line(&mutated) {
            prop_assert_eq!(parse_line(&ev.to_json_line()).unwrap(), ev);
        }
        let truncated = &line[..at];
        let _ = parse_line(truncated);
    }
}
