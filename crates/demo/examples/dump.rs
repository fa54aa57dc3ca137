//! Writes the demo data set as JSON Lines to standard output: `dump [ACCOUNTS] [SEED]`.

use waterfall_demo::{generate, write_jsonl, DemoOptions};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let d = DemoOptions::default();
    let opts = DemoOptions {
        accounts: args
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or(d.accounts),
        seed: args.next().and_then(|a| a.parse().ok()).unwrap_or(d.seed),
        ..d
    };
    write_jsonl(&generate(&opts), std::io::stdout().lock())
}
