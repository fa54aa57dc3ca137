//! `waterfall show` and `waterfall why`: one person's or account's truth, with causes.

use crate::error::{CliError, CliResult};
use crate::DbArgs;
use waterfall_core::{Event, EventBody, Field, Level, Subject, Timestamp, Transition};
use waterfall_engine::{
    derive_records_with, DeriveOptions, Derived, SequencedEvent, SequencedRecord,
};
use waterfall_model::Model;
use waterfall_store::{PersonRow, Store};

/// `waterfall show …`
#[derive(clap::Subcommand)]
pub enum ShowCommand {
    /// A person: stage, status, account and the full timeline of changes with causes.
    Person(SubjectArgs),
    /// An account: type, opportunities, people and their stages.
    Account(SubjectArgs),
}

/// `waterfall why …`
#[derive(clap::Subcommand)]
pub enum WhyCommand {
    /// Why a person is in their stage and status: the rules and events that put them there.
    Person(SubjectArgs),
}

/// Arguments naming one person or account.
#[derive(clap::Args)]
pub struct SubjectArgs {
    /// The person's or account's id.
    id: String,
    /// Show the state as it was at this instant (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    as_of: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    db: DbArgs,
}

/// How to print.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// For tools.
    Json,
}

/// A person's state and timeline at an instant.
struct PersonView {
    person: PersonRow,
    timeline: Vec<Transition>,
}

fn open(db: &DbArgs) -> CliResult<Store> {
    if !db.db.exists() {
        return Err(
            CliError::user(format!("no database at {}", db.db.display()))
                .hint("create one with `waterfall ingest` or `waterfall demo`"),
        );
    }
    Ok(Store::open(&db.db)?)
}

fn parse_instant(s: &str) -> CliResult<Timestamp> {
    Timestamp::parse_flexible(s).map_err(|e| CliError::user(format!("--as-of: {e}")))
}

fn person_view(store: &Store, id: &str, as_of: Option<Timestamp>) -> CliResult<PersonView> {
    let current = store
        .person(id)?
        .ok_or_else(|| CliError::user(format!("no person {id:?} in this database")))?;
    let Some(t) = as_of else {
        let timeline = store
            .transitions_of(id)?
            .into_iter()
            .filter(|t| t.level == Level::Person)
            .collect();
        return Ok(PersonView {
            person: current,
            timeline,
        });
    };
    // As of an instant: re-derive the person's partition from the events up to then.
    let model = store
        .stored_model()?
        .ok_or_else(|| CliError::internal("database has people but no model"))?;
    let events = store.partition_events(&current.partition, t)?;
    let mut derived = derive_stored(store, &model, &current.partition, &events, t)?;
    derived.keep_own_account(&current.partition);
    let state = derived
        .people
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| CliError::user(format!("person {id:?} did not exist yet at {t}")))?;
    let timeline = derived
        .transitions
        .into_iter()
        .filter(|x| x.level == Level::Person && x.subject == id)
        .collect();
    Ok(PersonView {
        person: PersonRow {
            id: state.id,
            partition: current.partition,
            account: state.account,
            attrs: state.attrs,
            stage: state.stage,
            status: state.status,
            created_at: state.created_at,
            last_activity: state.last_activity,
            merged_into: state.merged_into,
        },
        timeline,
    })
}

fn attr<'a>(p: &'a PersonRow, k: &str) -> Option<&'a str> {
    p.attrs.get(k).and_then(|v| v.as_str())
}

fn day(t: Timestamp) -> String {
    t.to_datetime().format("%Y-%m-%d %H:%M").to_string()
}

/// Describes an event in a few plain words.
pub fn describe(e: &Event) -> String {
    match &e.body {
        EventBody::Account { account, .. } => format!("account {account} updated"),
        EventBody::Person {
            person, account, ..
        } => match account {
            Some(a) => format!("person {person} recorded at account {a}"),
            None => format!("person {person} recorded"),
        },
        EventBody::Activity { subject, kind, .. } => match subject {
            Subject::Person(p) => format!("{p} did {kind}"),
            Subject::Account(a) => format!("account {a} showed {kind}"),
        },
        EventBody::Opportunity {
            opportunity,
            kind,
            state,
            ..
        } => format!(
            "opportunity {opportunity}{} is {}",
            kind.map(|k| format!(" ({})", k.as_str()))
                .unwrap_or_default(),
            state.as_str()
        ),
        EventBody::Status {
            status, by, reason, ..
        } => format!(
            "status set to {status}{}{}",
            by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default(),
            reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        EventBody::Stage {
            stage, by, reason, ..
        } => format!(
            "stage set to {stage}{}{}",
            by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default(),
            reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        EventBody::Merge { person, into } => format!("{person} merged into {into}"),
        EventBody::Erase { .. } => "erasure requested".to_string(),
    }
}

/// The events transitions name as their cause: one partition's, read once when first asked.
struct Causes<'s> {
    store: &'s Store,
    partition: String,
    events: Option<std::collections::HashMap<String, Event>>,
}

impl<'s> Causes<'s> {
    fn new(store: &'s Store, partition: &str) -> Self {
        Causes {
            store,
            partition: partition.to_string(),
            events: None,
        }
    }

    /// A stored event of the partition, by id.
    fn event(&mut self, id: &str) -> CliResult<Option<&Event>> {
        if self.events.is_none() {
            let all = self.store.stored_events(&self.partition)?;
            self.events = Some(
                all.into_iter()
                    .map(|e| (e.event.id.clone(), e.event))
                    .collect(),
            );
        }
        Ok(self.events.as_ref().and_then(|m| m.get(id)))
    }

    /// Why a transition happened, in words.
    fn of(&mut self, t: &Transition) -> CliResult<String> {
        let event = match t.event.as_deref() {
            Some(id) => Some((id, self.event(id)?)),
            None => None,
        };
        Ok(cause(t, event))
    }
}

fn cause(t: &Transition, event: Option<(&str, Option<&Event>)>) -> String {
    let rule = match (t.level, t.rule.as_str()) {
        (Level::Account, "created") => "account created",
        (_, r) => r,
    };
    cause_text(rule, event, t.order.at)
}

/// Why a change happened, in one line: the rule, and the event that caused it (its id and,
/// when its body is known, what it was) or the timer due at `at`.
pub fn cause_text(rule: &str, event: Option<(&str, Option<&Event>)>, at: Timestamp) -> String {
    let rule = match rule {
        "account created" => "the account was created".to_string(),
        "created" => "the person was created".to_string(),
        "explicit" => "set explicitly".to_string(),
        r => format!("rule `{r}`"),
    };
    match event {
        Some((id, Some(e))) => format!("{rule}, on event {id} ({} at {})", describe(e), day(e.at)),
        Some((id, None)) => format!("{rule}, on event {id} (erased)"),
        None => format!("{rule} (a timer due at {})", day(at)),
    }
}

/// Runs `waterfall show`.
pub fn show(cmd: ShowCommand) -> CliResult {
    match cmd {
        ShowCommand::Person(a) => show_person(a),
        ShowCommand::Account(a) => show_account(a),
    }
}

/// Derives a stored partition's events up to `horizon` as the store does (contacts who live
/// elsewhere left to their own partition).
fn derive_stored(
    store: &Store,
    model: &Model,
    partition: &str,
    events: &[SequencedEvent],
    horizon: Timestamp,
) -> CliResult<Derived> {
    let elsewhere = store.contacts_elsewhere(Some(partition))?;
    let records: Vec<SequencedRecord<'_>> = events.iter().map(SequencedRecord::parsed).collect();
    Ok(derive_records_with(
        model,
        &records,
        DeriveOptions::until(horizon),
        elsewhere.get(partition).unwrap_or(&Default::default()),
    ))
}

fn show_person(a: SubjectArgs) -> CliResult {
    let store = open(&a.db)?;
    let as_of = a.as_of.as_deref().map(parse_instant).transpose()?;
    let v = person_view(&store, &a.id, as_of)?;
    if a.format == Format::Json {
        let matched = store.person_match(&a.id)?.map(|m| {
            serde_json::json!({"account": m.account,
            "confidence": m.confidence, "method": m.method, "explanation": m.explanation})
        });
        let contact = store
            .contact_claim(&a.id)?
            .map(|(opportunity, at)| serde_json::json!({"opportunity": opportunity, "at": at}));
        let json = serde_json::json!({ "person": v.person, "timeline": v.timeline, "as_of": as_of,
            "match": matched, "first_contact_of": contact });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("serialisable")
        );
        return Ok(());
    }
    let p = &v.person;
    if let Some(into) = &p.merged_into {
        println!("{} was merged into {into}: its history is part of {into}'s (`waterfall show person {into}`)", p.id);
        return Ok(());
    }
    let label: Vec<&str> = ["email", "title", "source"]
        .iter()
        .filter_map(|k| attr(p, k))
        .collect();
    println!(
        "person {}{}",
        p.id,
        if label.is_empty() {
            String::new()
        } else {
            format!(" ({})", label.join(", "))
        }
    );
    if let Some(t) = as_of {
        println!("  as of     {t}");
    }
    let matched = store
        .person_match(&p.id)?
        .filter(|m| p.account.as_deref() == Some(m.account.as_str()))
        .map(|m| {
            format!(
                "  (matched by {}, confidence {:.2})",
                m.method, m.confidence
            )
        });
    println!(
        "  account   {}{}",
        p.account.as_deref().unwrap_or("(none)"),
        matched.unwrap_or_default()
    );
    if let Some((opportunity, at)) = store.contact_claim(&p.id)? {
        // Without an account of their own, a contact lives with this deal's account.
        println!("  contact   of deal {opportunity} since {}", day(at));
    }
    let since = |field: Field| {
        v.timeline
            .iter()
            .rev()
            .find(|t| t.field == field)
            .map(|t| day(t.order.at))
            .unwrap_or_default()
    };
    println!("  stage     {}  (since {})", p.stage, since(Field::Stage));
    if let Some(s) = &p.status {
        println!("  status    {s}  (since {})", since(Field::Status));
    }
    if let Some(t) = v.timeline.iter().rev().find(|t| t.field == Field::Owner) {
        println!(
            "  owner     {}  (since {}, {})",
            t.to,
            day(t.order.at),
            t.rule
        );
    }
    println!("  created   {}", day(p.created_at));
    if let Some(t) = p.last_activity {
        println!("  last activity {}", day(t));
    }
    println!("timeline ({} changes):", v.timeline.len());
    let mut causes = Causes::new(&store, &v.person.partition);
    for t in &v.timeline {
        println!(
            "  {}  {:<6} {:>14} → {:<14} {}",
            day(t.order.at),
            t.field.as_str(),
            t.from.as_deref().unwrap_or("—"),
            t.to,
            causes.of(t)?
        );
    }
    Ok(())
}

fn show_account(a: SubjectArgs) -> CliResult {
    let store = open(&a.db)?;
    let account = store
        .account(&a.id)?
        .ok_or_else(|| CliError::user(format!("no account {:?} in this database", a.id)))?;
    let (attrs, account_type, opportunities) =
        (account.attrs, account.account_type, account.opportunities);
    let people = store.people_of_account(&a.id)?;
    let as_of = a.as_of.as_deref().map(parse_instant).transpose()?;
    let mut rows = Vec::new();
    for p in people.iter().filter(|p| p.merged_into.is_none()) {
        rows.push(person_view(&store, &p.id, as_of)?.person);
    }
    // The buying group, scores and aggregates are derived state the store does not keep:
    // derive the account's partition up to the instant asked for (default: now).
    let model = store
        .stored_model()?
        .ok_or_else(|| CliError::internal("database has accounts but no model"))?;
    let horizon = as_of.unwrap_or_else(Timestamp::now);
    let events = store.partition_events(&account.partition, horizon)?;
    let mut derived = derive_stored(&store, &model, &account.partition, &events, horizon)?;
    derived.keep_own_account(&account.partition);
    let state = derived.accounts.into_iter().find(|x| x.id == a.id);
    // The account timeline: stored (what reports count), or re-derived as of an instant.
    let timeline: Vec<Transition> = match as_of {
        None => store
            .transitions_of(&a.id)?
            .into_iter()
            .filter(|t| t.level == Level::Account)
            .collect(),
        Some(_) => derived
            .transitions
            .into_iter()
            .filter(|t| t.level == Level::Account && t.subject == a.id)
            .collect(),
    };
    let stage = timeline.last().map(|t| t.to.clone());
    if a.format == Format::Json {
        let json = serde_json::json!({"account": a.id, "attrs": attrs, "type": account_type,
            "stage": stage, "fit": state.as_ref().map(|s| s.fit),
            "engagement": state.as_ref().map(|s| s.engagement),
            "aggregates": state.as_ref().map(|s| &s.aggregates),
            "buying_group": state.as_ref().map(|s| &s.buying_group),
            "coverage": state.as_ref().map(|s| &s.coverage),
            "opportunities": opportunities, "people": rows, "timeline": timeline,
            "as_of": as_of});
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("serialisable")
        );
        return Ok(());
    }
    let name = attrs.get("name").and_then(|v| v.as_str()).unwrap_or("");
    println!("account {} {name}", a.id);
    if let Some(t) = as_of {
        println!("  as of     {t}");
    }
    println!(
        "  type      {}",
        account_type.as_deref().unwrap_or("(unknown)")
    );
    if let Some(st) = &stage {
        let since = timeline.last().map(|t| day(t.order.at)).unwrap_or_default();
        println!("  stage     {st}  (since {since})");
    }
    for k in ["domain", "industry", "region", "employees", "owner"] {
        if let Some(v) = attrs.get(k) {
            println!(
                "  {k:<9} {}",
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            );
        }
    }
    if let Some(s) = &state {
        let g = &s.aggregates;
        println!("  fit       {:.0}", s.fit + 0.0);
        println!(
            "  engagement {:.1} (account activity and its people, decayed)",
            s.engagement
        );
        println!(
            "  engaged people {}, MQL-or-later people {}, open opportunities {}, won {}, intent surges (30 days) {}",
            g.engaged_people, g.mql_people, g.open_opportunities, g.won_opportunities, g.intent_surges_30d
        );
        println!("buying group ({}):", s.buying_group.len());
        for m in &s.buying_group {
            println!(
                "  {:<16} {:<12} {:<14} {:<8} {}",
                m.person,
                m.stage,
                m.journey.as_deref().unwrap_or(""),
                if m.engaged { "engaged" } else { "quiet" },
                if m.roles.is_empty() {
                    "(no role)".to_string()
                } else {
                    m.roles.join(", ")
                }
            );
        }
        for c in &s.coverage {
            println!(
                "  coverage{}: covered {}; missing {}",
                c.journey
                    .as_deref()
                    .map(|j| format!(" ({j})"))
                    .unwrap_or_default(),
                if c.covered.is_empty() {
                    "none".to_string()
                } else {
                    c.covered.join(", ")
                },
                if c.missing.is_empty() {
                    "none".to_string()
                } else {
                    c.missing.join(", ")
                }
            );
        }
    }
    if let Some(opps) = opportunities.as_array() {
        println!("opportunities ({}):", opps.len());
        for o in opps {
            println!(
                "  {} {} {} amount {} contacts {}",
                o["id"].as_str().unwrap_or(""),
                o["kind"].as_str().unwrap_or(""),
                o["state"].as_str().unwrap_or(""),
                o["amount"],
                o["contacts"].as_array().map(|c| c.len()).unwrap_or(0)
            );
        }
    }
    println!("people ({}):", rows.len());
    for p in &rows {
        println!(
            "  {:<16} {:<12} {:<18} {}",
            p.id,
            p.stage,
            p.status.as_deref().unwrap_or(""),
            attr(p, "title").unwrap_or("")
        );
    }
    println!("timeline ({} changes):", timeline.len());
    let mut causes = Causes::new(&store, &account.partition);
    for t in &timeline {
        println!(
            "  {}  {:>12} → {:<12} {}",
            day(t.order.at),
            t.from.as_deref().unwrap_or("—"),
            t.to,
            causes.of(t)?
        );
    }
    Ok(())
}

/// Runs `waterfall why`.
pub fn why(cmd: WhyCommand) -> CliResult {
    let WhyCommand::Person(a) = cmd;
    let store = open(&a.db)?;
    let as_of = a.as_of.as_deref().map(parse_instant).transpose()?;
    let v = person_view(&store, &a.id, as_of)?;
    let p = &v.person;
    let mut causes = Causes::new(&store, &p.partition);
    if let Some(into) = &p.merged_into {
        println!(
            "{} is the same human as {into} (merged): everything it did counts for {into}.",
            p.id
        );
        for d in store
            .person_duplicates(&p.id)?
            .iter()
            .filter(|d| d.person == p.id)
        {
            println!("It was merged automatically: both have the email {}, and {into} was created first.", d.email);
        }
        return Ok(());
    }
    if let Some(m) = store.person_match(&p.id)? {
        println!(
            "{} belongs to account {} by matching ({}, confidence {:.2}): {}.",
            p.id, m.account, m.method, m.confidence, m.explanation
        );
    }
    for d in store
        .person_duplicates(&p.id)?
        .iter()
        .filter(|d| d.person != p.id)
    {
        println!(
            "{} was merged into {} automatically: same email {}.",
            d.person, p.id, d.email
        );
    }
    let stages: Vec<&Transition> = v
        .timeline
        .iter()
        .filter(|t| t.field == Field::Stage)
        .collect();
    let statuses: Vec<&Transition> = v
        .timeline
        .iter()
        .filter(|t| t.field == Field::Status)
        .collect();
    match stages.last() {
        Some(t) => println!(
            "{} is in stage {} since {} because of {}.",
            p.id,
            p.stage,
            day(t.order.at),
            causes.of(t)?
        ),
        None => println!("{} is in stage {}.", p.id, p.stage),
    }
    if let (Some(s), Some(t)) = (&p.status, statuses.last()) {
        println!(
            "Their status is {s} since {} because of {}.",
            day(t.order.at),
            causes.of(t)?
        );
        // A status that couples to another stage, yet the stage did not follow: say why.
        if let Some(model) = store.stored_model()? {
            let coupled = model
                .status_id(s)
                .and_then(|id| {
                    model
                        .coupling
                        .status_to_stage
                        .get(id as usize)
                        .copied()
                        .flatten()
                })
                .map(|stage| model.stages[stage as usize].name.clone());
            let stage_moved_later = stages.last().is_some_and(|st| st.order > t.order);
            let blocked = |stage: &String| match (model.stage_id(&p.stage), model.stage_id(stage)) {
                (Some(from), Some(to)) => !model.allows(from, to),
                _ => false,
            };
            if let Some(stage) =
                coupled.filter(|stage| *stage != p.stage && !stage_moved_later && blocked(stage))
            {
                println!(
                    "Status {s} would move them to {stage}, but the model does not allow {} → {stage}, so the stage stayed {}.",
                    p.stage, p.stage
                );
            }
        }
    }
    if stages.len() > 1 {
        println!("How they got there:");
        for t in &stages {
            println!(
                "  {} {} → {}: {}",
                day(t.order.at),
                t.from.as_deref().unwrap_or("(new)"),
                t.to,
                causes.of(t)?
            );
        }
    }
    let rejected = store.rejections(&p.partition)?;
    let mine: Vec<_> = rejected
        .iter()
        .filter(|(id, _, _)| {
            causes
                .event(id)
                .ok()
                .flatten()
                .and_then(|e| e.body.person())
                == Some(p.id.as_str())
        })
        .collect();
    if !mine.is_empty() {
        println!("Events that changed nothing:");
        for (id, at, reason) in mine {
            println!("  {} event {id}: {reason}", day(*at));
        }
    }
    Ok(())
}
