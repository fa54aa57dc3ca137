//! A deterministic, realistic B2B demo data set for Waterfall, written as canonical events
//! (`shared/docs/events.md`).
//!
//! [`generate`] simulates a vendor's demand funnel over a window of days (two years by
//! default) and returns the raw facts a CRM and a marketing-automation platform would
//! export: accounts, people, activities, sales status changes, opportunities and merges.
//! It writes **no derived stages**: the lifecycle model's automation has to derive MQLs,
//! recycling, SQOs and customers from behaviour. The only `stage` events are rare explicit
//! sales rejections (`SRL`) and disqualifications (`Disqualified`).
//!
//! Same [`DemoOptions`], same events, same bytes: all randomness comes from one seeded,
//! portable PCG stream (`rand_pcg`), and no hash-map order reaches the output. The few
//! floating-point transforms (`ln`, `exp`, `powf` for log-normal sizes and waits) are
//! rounded or compared right after, so a last-bit difference between platforms' maths
//! libraries could change the output only in a vanishingly rare case.
//!
//! # The latent model
//! - **Accounts** get firmographics (industry, log-normal employee count, revenue, region)
//!   and an ICP tier from industry fit and size. Tier sets the rate of *buying episodes*
//!   (Poisson over the window: tier 1 ≈ 2.8, tier 2 ≈ 1.8, tier 3 ≈ 1.0).
//! - **Episodes** start with account-level signals (an `intent_surge`, de-anonymised
//!   `web_visit`s on the account) one to three weeks before 1–4 people of the account burst
//!   into activity. Burst intensity grows with the episode's strength, so high-fit accounts
//!   engage more and harder; people engaged before are favoured, which makes people who went
//!   silent (and were recycled) come back.
//! - **Background**: a fortnightly newsletter that each person opens with their own
//!   propensity (many almost never do, some unsubscribe), and a little organic web traffic.
//! - **Hand-raise**: a burst with two or more high-value activities (content download,
//!   webinar, form fill, demo request, meeting). Most hand-raisers are set `Working` by their
//!   SDR 0–6 business days later (some late, some on a weekend, some never), then
//!   `Qualified` (~half), `Nurture` or `Disqualified`.
//! - **Opportunities**: ~60% of qualifications open a `new_business` deal (or an
//!   `expansion` for a customer) with a buying group of 1–4 people and their roles; it moves
//!   through Discovery → Proposal → Negotiation and closes 1–4 months later. Won new business
//!   makes the account a customer, schedules expansion episodes and a yearly renewal.
//! - **People** arrive the way their source says: inbound leads with the activity that
//!   created them (a form fill, a webinar, a download), purchased lists in four-weekly batches
//!   sharing one instant; a few change title later.
//! - **Data quality**: ~5% of people arrive without an account (with a `company` and an
//!   email at the account's domain, a few with free-mail; a quarter are linked to their
//!   account by hand later), ~2% arrive twice from another source with a case or
//!   plus-address variant of their email, and about a third of those duplicates are merged
//!   later.
//!
//! Events come back in a loose export order (sorted by a jittered instant, a few very
//! late), with ids `d1`, `d2`, … in that order.
//!
//! ```
//! use waterfall_demo::{generate, write_jsonl, DemoOptions};
//!
//! let opts = DemoOptions { accounts: 20, ..DemoOptions::default() };
//! let events = generate(&opts);
//! assert!(events.iter().all(|e| e.at >= opts.start && e.at < opts.end()));
//! let mut jsonl = Vec::new();
//! write_jsonl(&events, &mut jsonl)?;
//! assert_eq!(jsonl.iter().filter(|&&b| b == b'\n').count(), events.len());
//! # Ok::<(), std::io::Error>(())
//! ```

#![forbid(unsafe_code)]

mod gen;
mod words;

use std::io::Write;
use waterfall_core::{Event, Timestamp};

/// What to generate: how many accounts, from which seed, over which window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Number of accounts (companies) to simulate.
    pub accounts: usize,
    /// Seed of the random stream: same seed, same events.
    pub seed: u64,
    /// First instant of the window.
    pub start: Timestamp,
    /// Length of the window in days; nothing happens after `start + days`.
    pub days: u32,
}

impl DemoOptions {
    /// The first instant after the window (`start + days`): every event is before it.
    pub fn end(&self) -> Timestamp {
        self.start.plus_seconds(i64::from(self.days) * 86_400)
    }
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            accounts: 2000,
            seed: 42,
            // 2025-01-01T00:00:00Z
            start: Timestamp(1_735_689_600_000_000),
            days: 730,
        }
    }
}

/// Generates the demo data set as canonical events in a loose export order.
pub fn generate(opts: &DemoOptions) -> Vec<Event> {
    gen::run(opts)
}

/// Writes events as JSON Lines (one canonical JSON object and a newline per event).
pub fn write_jsonl(events: &[Event], w: impl Write) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
    for e in events {
        serde_json::to_writer(&mut w, &e.to_json())?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_start_is_2025() {
        assert_eq!(
            DemoOptions::default().start,
            Timestamp::parse("2025-01-01T00:00:00Z").unwrap()
        );
    }
}
