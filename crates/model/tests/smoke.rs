//! The shipped models load clean.
use waterfall_model::*;

#[test]
fn shipped_models_load_clean() {
    for (name, text) in [
        ("demand-waterfall.toml", DEMAND_WATERFALL_TOML),
        ("history-only.toml", HISTORY_ONLY_TOML),
    ] {
        match load(name, text) {
            Ok(m) => assert!(m.warnings.is_empty(), "{:?}", m.warnings),
            Err(d) => panic!("{}", d.render()),
        }
    }
}
