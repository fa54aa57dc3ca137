//! What the engine's benchmark and the `derive_demo` example share.

use std::collections::{BTreeMap, HashMap};
use waterfall_core::Event;
use waterfall_engine::SequencedEvent;

/// Events grouped by account as the store partitions them (people without an account get
/// their own partition), each partition in derivation order.
pub fn by_account(events: Vec<Event>) -> Vec<Vec<SequencedEvent>> {
    let mut account_of_person = HashMap::new();
    for e in &events {
        if let (Some(p), Some(a)) = (e.body.person(), e.body.account()) {
            account_of_person.insert(p.to_string(), a.to_string());
        }
    }
    let mut groups: BTreeMap<String, Vec<SequencedEvent>> = BTreeMap::new();
    for (seq, event) in events.into_iter().enumerate() {
        let key = event
            .body
            .account()
            .map(str::to_string)
            .or_else(|| {
                event
                    .body
                    .person()
                    .and_then(|p| account_of_person.get(p).cloned())
            })
            .unwrap_or_else(|| format!("~{}", event.body.person().unwrap_or("")));
        groups.entry(key).or_default().push(SequencedEvent {
            seq: seq as u64,
            event,
        });
    }
    groups
        .into_values()
        .map(|mut evs| {
            evs.sort_by_key(|e| (e.event.at, e.seq));
            evs
        })
        .collect()
}
