//! The simulation behind [`crate::generate`]: accounts, people, episodes, sales, deals.
//!
//! Instants are whole Unix seconds while simulating; they become [`Timestamp`]s at the end.

use crate::words::*;
use crate::DemoOptions;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use waterfall_core::{
    Attrs, Event, EventBody, OpportunityContact, OpportunityKind, OpportunityState, Subject,
    Timestamp,
};

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
const NEVER: i64 = i64::MAX;

/// The seeded random stream and the few distributions the model needs.
struct Rnd(Pcg64Mcg);

impl Rnd {
    fn f(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.f() < p
    }

    /// A uniform integer in `lo..hi` (`lo` when the range is empty).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            self.0.random_range(lo..hi)
        }
    }

    fn idx(&mut self, n: usize) -> usize {
        self.0.random_range(0..n as u64) as usize
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.idx(xs.len())]
    }

    fn weighted(&mut self, w: impl Iterator<Item = u32> + Clone) -> usize {
        let total: u32 = w.clone().sum();
        let mut x = self.range(0, total as i64) as u32;
        for (i, wi) in w.enumerate() {
            if x < wi {
                return i;
            }
            x -= wi;
        }
        0
    }

    /// A standard normal deviate (Marsaglia's polar method: only `ln` and `sqrt`).
    fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.f() - 1.0;
            let v = 2.0 * self.f() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * s.ln() / s).sqrt();
            }
        }
    }

    fn lognormal(&mut self, mu: f64, sigma: f64) -> f64 {
        (mu + sigma * self.normal()).exp()
    }

    /// An exponential wait with the given mean, in seconds.
    fn exp_secs(&mut self, mean: f64) -> i64 {
        (-mean * (1.0 - self.f()).ln()) as i64
    }

    fn poisson(&mut self, lambda: f64) -> u32 {
        let l = (-lambda).exp();
        let mut p = 1.0;
        let mut k = 0;
        loop {
            p *= self.f();
            if p <= l || k > 200 {
                return k;
            }
            k += 1;
        }
    }
}

/// Builds an attribute map from pairs.
fn attrs<const N: usize>(kv: [(&str, Value); N]) -> Attrs {
    let mut m = Map::new();
    for (k, v) in kv {
        m.insert(k.to_string(), v);
    }
    m
}

/// Monday = 0 … Sunday = 6.
fn weekday(t: i64) -> i64 {
    (t.div_euclid(DAY) + 3).rem_euclid(7)
}

fn day_floor(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

struct Person {
    id: String,
    created: i64,
    has_account: bool,
    seniority: &'static str,
    owner: String,
    /// Probability of opening one newsletter.
    p_open: f64,
    /// When they stop opening newsletters.
    optout: i64,
    /// When this record is merged into another (`NEVER` if not).
    merged: i64,
    is_dup: bool,
    /// How many bursts they have had.
    engaged: u32,
    /// No new sales cycle starts before this instant.
    sales_free_at: i64,
    disqualified: bool,
}

impl Person {
    /// Whether the record can carry an event at `t`.
    fn alive(&self, t: i64) -> bool {
        t > self.created && t < self.merged
    }
}

struct Account {
    id: String,
    created: i64,
    tier: u32,
    employees: i64,
    /// Hours to add to a local working hour to get UTC.
    utc_offset: i64,
    people: Vec<Person>,
    /// No new new-business or expansion deal opens before this instant.
    busy_until: i64,
    customer: bool,
    arr: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Episode {
    Organic,
    Expansion,
}

struct Sim {
    r: Rnd,
    start: i64,
    end: i64,
    /// Simulated facts: (instant in seconds, body).
    out: Vec<(i64, EventBody)>,
    campaigns: Vec<i64>,
    /// When purchased lists are loaded (every four weeks).
    imports: Vec<i64>,
    names: HashSet<String>,
    n_people: usize,
    opps: usize,
}

pub(crate) fn run(o: &DemoOptions) -> Vec<Event> {
    let start = o.start.0.div_euclid(1_000_000);
    let end = start + i64::from(o.days) * DAY;
    // The newsletter goes out every other Tuesday at 14:00 UTC.
    let mut first = day_floor(start) + 14 * HOUR;
    while weekday(first) != 1 {
        first += DAY;
    }
    let campaigns = (0..)
        .map(|k| first + k * 14 * DAY)
        .take_while(|&t| t < end)
        .collect();
    let mut monday = day_floor(start) + 9 * HOUR;
    while weekday(monday) != 0 {
        monday += DAY;
    }
    let imports = (0..)
        .map(|k| monday + k * 28 * DAY)
        .take_while(|&t| t < end)
        .collect();
    let mut sim = Sim {
        r: Rnd(Pcg64Mcg::seed_from_u64(o.seed)),
        start,
        end,
        out: Vec::with_capacity(o.accounts * 160),
        campaigns,
        imports,
        names: HashSet::new(),
        n_people: 0,
        opps: 0,
    };
    for a in 0..o.accounts {
        sim.account(a);
    }
    sim.finish()
}

impl Sim {
    fn push(&mut self, at: i64, body: EventBody) {
        if at >= self.start && at < self.end {
            self.out.push((at, body));
        }
    }

    fn act_person(&mut self, at: i64, p: &str, kind: &str, attrs: Attrs) {
        let body = EventBody::Activity {
            subject: Subject::Person(p.to_string()),
            kind: kind.to_string(),
            attrs,
        };
        self.push(at, body);
    }

    /// A working-hour instant on the day of `t`, local to the account.
    fn work_time(&mut self, acc_offset: i64, t: i64) -> i64 {
        let hour = 8 + self
            .r
            .weighted([3u32, 6, 7, 6, 4, 6, 7, 6, 4, 2].into_iter()) as i64;
        day_floor(t) + (hour + acc_offset).rem_euclid(24) * HOUR + self.r.range(0, HOUR)
    }

    /// `n` business days after `t`, at a working hour.
    fn business_days_after(&mut self, acc_offset: i64, t: i64, n: i64) -> i64 {
        let mut d = t;
        let mut left = n;
        while left > 0 || weekday(d) >= 5 {
            d += DAY;
            if weekday(d) < 5 {
                left -= 1;
            }
        }
        let w = self.work_time(acc_offset, d);
        if w <= t {
            t + self.r.range(10 * MINUTE, 3 * HOUR)
        } else {
            w
        }
    }

    fn company_name(&mut self) -> (String, String) {
        for attempt in 0.. {
            let a = *self.r.pick(COMPANY_A);
            let (name, stem) = match self.r.idx(3) {
                0 => {
                    let b = *self.r.pick(COMPANY_B);
                    (format!("{a} {b}"), format!("{a}{b}"))
                }
                1 => {
                    let b = *self.r.pick(SUFFIXES);
                    (format!("{a}{b}"), format!("{a}{b}"))
                }
                _ => {
                    let b = *self.r.pick(COMPANY_A);
                    if b == a {
                        continue;
                    }
                    (format!("{a} {b}"), format!("{a}{b}"))
                }
            };
            let (name, stem) = if attempt >= 8 {
                let n = self.r.range(2, 100);
                (format!("{name} {n}"), format!("{stem}{n}"))
            } else {
                (name, stem)
            };
            if self.names.insert(name.clone()) {
                let tld = self.r.pick(TLDS);
                return (name, format!("{}.{tld}", stem.to_lowercase()));
            }
        }
        unreachable!("the loop only ends by returning")
    }

    fn account(&mut self, a: usize) {
        let r = &mut self.r;
        let (industry, ind_fit) = *r.pick(INDUSTRIES);
        let employees = r.lognormal(5.0, 1.6).round().clamp(5.0, 250_000.0) as i64;
        let revenue =
            ((employees as f64 * r.lognormal(12.0, 0.5)) / 10_000.0).round() as i64 * 10_000;
        let size_fit = if employees >= 1000 {
            2
        } else if employees >= 200 {
            1
        } else {
            0
        };
        let fit = ind_fit + size_fit;
        let tier = if fit >= 4 {
            1
        } else if fit >= 2 {
            2
        } else {
            3
        };
        let region = r.weighted(REGION_WEIGHTS.iter().copied());
        let utc_offset = [5, -1, -8, 3][region];
        let created = self.start + r.range(0, (self.end - self.start) / 2);
        let owner = format!("ae_{}", 1 + r.idx(12));
        let (name, domain) = self.company_name();
        let id = format!("a{}", a + 1);
        let (region_name, countries) = REGIONS[region];
        self.push(
            created,
            EventBody::Account {
                account: id.clone(),
                attrs: attrs([
                    ("name", name.clone().into()),
                    ("domain", domain.clone().into()),
                    ("industry", industry.into()),
                    ("employees", employees.into()),
                    ("annual_revenue", revenue.into()),
                    ("region", region_name.into()),
                    ("icp_tier", tier.into()),
                    ("type", "prospect".into()),
                    ("owner", owner.into()),
                ]),
            },
        );
        let mut acc = Account {
            id,
            created,
            tier,
            employees,
            utc_offset,
            people: Vec::new(),
            busy_until: 0,
            customer: false,
            arr: 0.0,
        };
        self.people(&mut acc, &name, &domain, region, countries);
        self.background(&acc);

        let lambda = [2.8, 1.8, 1.0][tier as usize - 1];
        let mut heap = BinaryHeap::new();
        for _ in 0..self.r.poisson(lambda) {
            let t = self.r.range(created + 7 * DAY, self.end);
            heap.push(Reverse((t, Episode::Organic)));
        }
        while let Some(Reverse((t, kind))) = heap.pop() {
            if t >= self.end {
                break;
            }
            self.episode(&mut acc, t, kind, &mut heap);
        }
    }

    fn people(
        &mut self,
        acc: &mut Account,
        name: &str,
        domain: &str,
        region: usize,
        countries: &[&str],
    ) {
        let n = 3 + self
            .r
            .poisson(1.5 + 1.6 * (acc.employees as f64).log10())
            .min(12);
        let mut emails: HashSet<String> = HashSet::new();
        let team = 1 + region * 5 + self.r.idx(5);
        for _ in 0..n {
            let r = &mut self.r;
            let u = r.f();
            let created = acc.created
                + (u.powf(1.6) * (self.end - acc.created) as f64 * 0.85) as i64
                + r.range(MINUTE, 2 * HOUR);
            let first = *r.pick(FIRST);
            let last = *r.pick(LAST);
            let (title, seniority, dept, _) = TITLES[r.weighted(TITLES.iter().map(|t| t.3))];
            let source = SOURCES[r.weighted(SOURCES.iter().map(|s| s.1))].0;
            let created = if source == "list_purchase" {
                // Purchased lists are loaded in batches: one instant for the whole list.
                let k = self.imports.partition_point(|&t| t < created);
                self.imports.get(k).copied().unwrap_or(created)
            } else {
                created
            };
            let r = &mut self.r;
            let country = *r.pick(countries);
            let no_account = r.chance(0.05);
            let free = r.chance(if no_account { 0.3 } else { 0.01 });
            let mut local = format!("{}.{}", first.to_lowercase(), last.to_lowercase());
            let host = if free {
                local = format!("{local}{}", r.range(1, 99));
                *r.pick(FREE_MAIL)
            } else {
                domain
            };
            let mut email = format!("{local}@{host}");
            let mut k = 2;
            while !emails.insert(email.clone()) {
                email = format!("{local}{k}@{host}");
                k += 1;
            }
            let sdr = if r.chance(0.8) {
                team
            } else {
                1 + region * 5 + r.idx(5)
            };
            let owner = format!("sdr_{sdr}");
            let p_open = r.f().powi(3) * 0.5;
            let optout = if r.chance(0.25) {
                created + r.range(30 * DAY, 500 * DAY)
            } else {
                NEVER
            };
            self.n_people += 1;
            let id = format!("p{}", self.n_people);
            let mut at = attrs([
                ("email", email.clone().into()),
                ("first_name", first.into()),
                ("last_name", last.into()),
                ("title", title.into()),
                ("seniority", seniority.into()),
                ("department", dept.into()),
                ("country", country.into()),
                ("source", source.into()),
                ("owner", owner.clone().into()),
            ]);
            if no_account {
                at.insert("company".into(), self.company_as_typed(name).into());
            }
            self.push(
                created,
                EventBody::Person {
                    person: id.clone(),
                    account: (!no_account).then(|| acc.id.clone()),
                    attrs: at.clone(),
                },
            );
            self.origin(&id, created, source);
            let r = &mut self.r;
            if no_account && r.chance(0.25) {
                // Someone in sales links the lead to its account by hand.
                let at = created + r.range(DAY, 60 * DAY);
                self.push(
                    at,
                    EventBody::Person {
                        person: id.clone(),
                        account: Some(acc.id.clone()),
                        attrs: Attrs::new(),
                    },
                );
            }
            let r = &mut self.r;
            if r.chance(0.03) {
                // A new job title within the same department.
                let at = created + r.range(90 * DAY, 600 * DAY);
                let same: Vec<usize> = (0..TITLES.len())
                    .filter(|&i| TITLES[i].2 == dept && TITLES[i].0 != title)
                    .collect();
                if !same.is_empty() {
                    let (t, sen, _, _) = TITLES[*r.pick(&same)];
                    self.push(
                        at,
                        EventBody::Person {
                            person: id.clone(),
                            account: None,
                            attrs: attrs([("title", t.into()), ("seniority", sen.into())]),
                        },
                    );
                }
            }
            acc.people.push(Person {
                id,
                created,
                has_account: !no_account,
                seniority,
                owner: owner.clone(),
                p_open,
                optout,
                merged: NEVER,
                is_dup: false,
                engaged: 0,
                sales_free_at: 0,
                disqualified: false,
            });
            let r = &mut self.r;
            // The same human arriving again from another source.
            if !free && r.chance(0.02) {
                let dup_created = created + r.range(20 * DAY, 300 * DAY);
                let dup_email = if r.chance(0.5) {
                    let mut s = email.clone();
                    capitalise_parts(&mut s);
                    s
                } else {
                    let (l, d) = email.split_once('@').unwrap_or((&email, domain));
                    format!("{l}+{}@{d}", r.pick(&["events", "news", "demo", "webinar"]))
                };
                let dup_source = SOURCES[r.weighted(SOURCES.iter().map(|s| s.1))].0;
                let dup_has_account = r.chance(0.7);
                let merged = if r.chance(0.35) {
                    dup_created + r.range(7 * DAY, 120 * DAY)
                } else {
                    NEVER
                };
                let dup_p_open = r.f().powi(2) * 0.4;
                self.n_people += 1;
                let dup_id = format!("p{}", self.n_people);
                at.insert("email".into(), dup_email.into());
                at.insert("source".into(), dup_source.into());
                if !dup_has_account {
                    at.insert("company".into(), self.company_as_typed(name).into());
                }
                self.push(
                    dup_created,
                    EventBody::Person {
                        person: dup_id.clone(),
                        account: dup_has_account.then(|| acc.id.clone()),
                        attrs: at,
                    },
                );
                self.origin(&dup_id, dup_created, dup_source);
                if merged != NEVER {
                    let into = acc.people.last().map(|p| p.id.clone()).unwrap_or_default();
                    self.push(
                        merged,
                        EventBody::Merge {
                            person: dup_id.clone(),
                            into,
                        },
                    );
                }
                acc.people.push(Person {
                    id: dup_id,
                    created: dup_created,
                    has_account: dup_has_account,
                    seniority,
                    owner,
                    p_open: dup_p_open,
                    optout: NEVER,
                    merged,
                    is_dup: true,
                    engaged: 0,
                    sales_free_at: 0,
                    disqualified: false,
                });
            }
        }
    }

    /// The activity that created an inbound lead, right after its `person` event.
    fn origin(&mut self, id: &str, created: i64, source: &str) {
        let (kind, a) = match source {
            "paid_search" | "organic" => {
                ("form_fill", attrs([("form", (*self.r.pick(FORMS)).into())]))
            }
            "webinar" => (
                "webinar_attended",
                attrs([("topic", (*self.r.pick(TOPICS)).into())]),
            ),
            "content_syndication" => (
                "content_download",
                attrs([("asset", (*self.r.pick(ASSETS)).into())]),
            ),
            _ => return,
        };
        let at = created + self.r.range(1, 2 * MINUTE);
        self.act_person(at, id, kind, a);
    }

    /// The company name as a person types it into a form.
    fn company_as_typed(&mut self, name: &str) -> String {
        match self.r.idx(4) {
            0 => format!("{name} {}", self.r.pick(LEGAL)),
            1 => name.to_lowercase(),
            _ => name.to_string(),
        }
    }

    /// Newsletter opens and clicks, and a little organic traffic.
    fn background(&mut self, acc: &Account) {
        let campaigns = std::mem::take(&mut self.campaigns);
        for p in &acc.people {
            for &c in &campaigns {
                if c <= p.created || c >= p.optout || c >= p.merged || !self.r.chance(p.p_open) {
                    continue;
                }
                let t = c + MINUTE + self.r.exp_secs(5.0 * HOUR as f64);
                if !p.alive(t) {
                    continue;
                }
                self.act_person(t, &p.id, "email_open", Map::new());
                if self.r.chance(0.18) {
                    let t = t + self.r.range(5, 10 * MINUTE);
                    self.act_person(t, &p.id, "email_click", Map::new());
                    if self.r.chance(0.5) {
                        let t = t + self.r.range(5, 2 * MINUTE);
                        let url = *self.r.pick(PAGES);
                        self.act_person(t, &p.id, "web_visit", attrs([("url", url.into())]));
                    }
                }
            }
            for _ in 0..self.r.poisson(2.5) {
                let day = self.r.range(p.created, p.merged.min(self.end));
                let t = self.work_time(acc.utc_offset, day).max(p.created + MINUTE);
                if p.alive(t) {
                    let url = *self.r.pick(PAGES);
                    self.act_person(t, &p.id, "web_visit", attrs([("url", url.into())]));
                }
            }
        }
        self.campaigns = campaigns;
    }

    fn episode(
        &mut self,
        acc: &mut Account,
        t: i64,
        kind: Episode,
        heap: &mut BinaryHeap<Reverse<(i64, Episode)>>,
    ) {
        let base = [0.55, 0.4, 0.28][acc.tier as usize - 1];
        let boost = if kind == Episode::Expansion { 0.1 } else { 0.0 };
        let strength = (base + boost + 0.45 * self.r.f()).min(1.0);
        // Account-level signals come first: intent data, then de-anonymised traffic.
        if self.r.chance(0.7) {
            for _ in 0..1 + self.r.idx(2) {
                let at = (t - self.r.range(7 * DAY, 21 * DAY)).max(acc.created + HOUR);
                let topic = *self.r.pick(TOPICS);
                let score = 60 + (strength * 39.0) as i64;
                self.push(
                    at,
                    EventBody::Activity {
                        subject: Subject::Account(acc.id.clone()),
                        kind: "intent_surge".into(),
                        attrs: attrs([("topic", topic.into()), ("score", score.into())]),
                    },
                );
            }
        }
        for _ in 0..self.r.poisson(2.0 + 6.0 * strength) {
            let day = t + self.r.range(-21 * DAY, 14 * DAY);
            let at = self.work_time(acc.utc_offset, day).max(acc.created + HOUR);
            let url = *self.r.pick(PAGES);
            self.push(
                at,
                EventBody::Activity {
                    subject: Subject::Account(acc.id.clone()),
                    kind: "web_visit".into(),
                    attrs: attrs([("url", url.into())]),
                },
            );
        }
        // Then people of the account burst into activity.
        let eligible: Vec<usize> = (0..acc.people.len())
            .filter(|&i| {
                let p = &acc.people[i];
                p.created < t + 21 * DAY && p.merged > t + 7 * DAY && !p.disqualified
            })
            .collect();
        if eligible.is_empty() {
            return;
        }
        let k = (1 + self.r.poisson(strength * 2.0) as usize)
            .min(4)
            .min(eligible.len());
        let mut chosen: Vec<usize> = Vec::with_capacity(k);
        for _ in 0..k * 3 {
            if chosen.len() == k {
                break;
            }
            let engaged: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|&i| acc.people[i].engaged > 0 && !chosen.contains(&i))
                .collect();
            let i = if !engaged.is_empty() && self.r.chance(0.45) {
                *self.r.pick(&engaged)
            } else {
                *self.r.pick(&eligible)
            };
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        for i in chosen {
            self.burst(acc, i, t, strength, heap);
        }
    }

    fn burst(
        &mut self,
        acc: &mut Account,
        i: usize,
        t: i64,
        strength: f64,
        heap: &mut BinaryHeap<Reverse<(i64, Episode)>>,
    ) {
        let (created, merged) = (acc.people[i].created, acc.people[i].merged);
        let b0 = (t + self.r.range(0, 10 * DAY)).max(created + self.r.range(MINUTE, 2 * HOUR));
        let len = self.r.range(3 * DAY, 30 * DAY);
        let n = 2 + self.r.poisson(1.5 + 6.0 * strength) as usize;
        let mut times: Vec<i64> = (0..n)
            .map(|_| {
                let day = b0 + self.r.range(0, len);
                self.work_time(acc.utc_offset, day).max(created + MINUTE)
            })
            .collect();
        times.sort_unstable();
        let s = strength;
        let weights = [
            30.0,
            12.0,
            10.0,
            4.0 + 10.0 * s,
            2.0 + 6.0 * s,
            1.0 + 6.0 * s,
            if s > 0.5 { 7.0 * s } else { 0.5 },
        ];
        let kinds = [
            "web_visit",
            "email_open",
            "email_click",
            "content_download",
            "webinar_attended",
            "form_fill",
            "demo_request",
        ];
        let mut high = 0;
        let mut raised = None;
        let id = acc.people[i].id.clone();
        for at in times {
            if at >= merged {
                break;
            }
            let k = self.r.weighted(weights.iter().map(|w| (w * 10.0) as u32));
            let kind = kinds[k];
            let a = match kind {
                "web_visit" => attrs([("url", (*self.r.pick(PAGES)).into())]),
                "email_open" | "email_click" => Map::new(),
                "content_download" => attrs([("asset", (*self.r.pick(ASSETS)).into())]),
                "webinar_attended" => attrs([("topic", (*self.r.pick(TOPICS)).into())]),
                "form_fill" => attrs([("form", (*self.r.pick(FORMS)).into())]),
                _ => attrs([("form", "demo".into())]),
            };
            self.act_person(at, &id, kind, a);
            if k >= 3 {
                high += 1;
                if raised.is_none() && (high >= 2 || kind == "demo_request") {
                    raised = Some(at);
                }
            }
        }
        acc.people[i].engaged += 1;
        if let Some(h) = raised {
            let p = &acc.people[i];
            if !p.disqualified && h >= p.sales_free_at && h < self.end {
                self.sales(acc, i, h, heap);
            }
        }
    }

    fn status(&mut self, at: i64, p: &Person, status: &str, reason: Option<&str>) {
        if p.alive(at) {
            self.push(
                at,
                EventBody::Status {
                    person: p.id.clone(),
                    status: status.into(),
                    by: Some(p.owner.clone()),
                    reason: reason.map(Into::into),
                },
            );
        }
    }

    fn stage(&mut self, at: i64, p: &Person, stage: &str, reason: &str) {
        if p.alive(at) {
            self.push(
                at,
                EventBody::Stage {
                    person: p.id.clone(),
                    stage: stage.into(),
                    by: Some(p.owner.clone()),
                    reason: Some(reason.into()),
                },
            );
        }
    }

    /// A rep follows up a hand-raise: Working, then an outcome.
    fn sales(
        &mut self,
        acc: &mut Account,
        i: usize,
        h: i64,
        heap: &mut BinaryHeap<Reverse<(i64, Episode)>>,
    ) {
        if !self.r.chance(0.88) {
            // Never followed up: the model's SLA has to notice.
            acc.people[i].sales_free_at = h + 30 * DAY;
            return;
        }
        let bd = if self.r.chance(0.12) {
            self.r.range(7, 16)
        } else {
            self.r.weighted([20u32, 30, 20, 12, 8, 5, 5].into_iter()) as i64
        };
        let mut wt = self.business_days_after(acc.utc_offset, h, bd);
        if self.r.chance(0.06) {
            // Someone catches up on the weekend.
            let mut d = h + DAY;
            while weekday(d) < 5 {
                d += DAY;
            }
            wt = self.work_time(acc.utc_offset, d).max(h + MINUTE);
        }
        let p = &acc.people[i];
        self.status(wt, p, "Working", None);
        let days = self.r.range(3, 16);
        let ot = self.business_days_after(acc.utc_offset, wt, days);
        let u = self.r.f();
        let p = &acc.people[i];
        let mut qualified = false;
        if u < 0.5 {
            self.status(ot, p, "Qualified", None);
            qualified = true;
        } else if u < 0.68 {
            self.status(ot, p, "Nurture", Some("not ready to buy"));
        } else if u < 0.76 {
            let reason = *self.r.pick(DQ_REASONS);
            self.status(ot, p, "Disqualified", Some(reason));
            acc.people[i].disqualified = true;
        } else if u < 0.78 {
            self.stage(ot, p, "SRL", "rejected by sales: no project this year");
        } else if u < 0.785 {
            let reason = *self.r.pick(DQ_REASONS);
            self.stage(ot, p, "Disqualified", reason);
            acc.people[i].disqualified = true;
        }
        acc.people[i].sales_free_at = ot + 14 * DAY;
        let p = &acc.people[i];
        let share = if acc.customer { 0.7 } else { 0.6 };
        if qualified
            && p.has_account
            && p.alive(ot)
            && acc.busy_until < ot
            && ot < self.end
            && self.r.chance(share)
        {
            let open = ot + self.r.range(2 * DAY, 14 * DAY);
            self.opportunity(acc, i, open, heap);
        }
    }

    fn role_of(&mut self, seniority: &str) -> &'static str {
        match seniority {
            "c_level" => "economic_buyer",
            "vp" => "decision_maker",
            "director" if self.r.chance(0.5) => "decision_maker",
            "director" => "influencer",
            "manager" => "influencer",
            _ => "user",
        }
    }

    fn opportunity(
        &mut self,
        acc: &mut Account,
        primary: usize,
        open: i64,
        heap: &mut BinaryHeap<Reverse<(i64, Episode)>>,
    ) {
        let kind = if acc.customer {
            OpportunityKind::Expansion
        } else {
            OpportunityKind::NewBusiness
        };
        self.opps += 1;
        let id = format!("o{}", self.opps);
        let amount = match kind {
            OpportunityKind::NewBusiness => {
                let base = 6000.0 * (acc.employees as f64 / 20.0).max(1.0).powf(0.45);
                (base * self.r.lognormal(0.0, 0.25)).min(500_000.0)
            }
            _ => acc.arr * (0.2 + 0.4 * self.r.f()),
        };
        let amount = ((amount / 500.0).round() * 500.0).max(2500.0);
        // The buying group: the qualified person first, then others of the account.
        let size = 1 + self.r.weighted([3u32, 4, 3, 2].into_iter());
        let mut group = vec![primary];
        let pool: Vec<usize> = (0..acc.people.len())
            .filter(|&j| {
                let p = &acc.people[j];
                j != primary && p.has_account && !p.is_dup && p.alive(open) && !p.disqualified
            })
            .collect();
        for _ in 0..size * 2 {
            if group.len() >= size || pool.is_empty() {
                break;
            }
            let j = *self.r.pick(&pool);
            if !group.contains(&j) {
                group.push(j);
            }
        }
        let mut contacts = Vec::with_capacity(group.len());
        for (n, &j) in group.iter().enumerate() {
            let role = if n == 0 {
                "champion"
            } else {
                self.role_of(acc.people[j].seniority)
            };
            contacts.push(OpportunityContact {
                person: acc.people[j].id.clone(),
                role: Some(role.into()),
                primary: n == 0,
            });
        }
        let dur = self.r.range(30 * DAY, 120 * DAY);
        let close = self.work_time(acc.utc_offset, open + dur).max(open + DAY);
        let won_p = match kind {
            OpportunityKind::NewBusiness => [0.38, 0.3, 0.22][acc.tier as usize - 1],
            _ => 0.45,
        };
        let won = self.r.chance(won_p);
        let opp = |state, stage: &str, amount, contacts| EventBody::Opportunity {
            opportunity: id.clone(),
            account: Some(acc.id.clone()),
            kind: Some(kind),
            state,
            stage: Some(stage.to_string()),
            amount: Some(amount),
            contacts,
        };
        self.push(
            open,
            opp(OpportunityState::Open, "Discovery", amount, Some(contacts)),
        );
        let mut amount = amount;
        let mut reached = 0;
        if won || self.r.chance(0.6) {
            let at = open + dur * 35 / 100;
            amount = ((amount * (0.9 + 0.2 * self.r.f()) / 500.0).round() * 500.0).max(2500.0);
            self.push(at, opp(OpportunityState::Open, "Proposal", amount, None));
            reached = 1;
        }
        if reached == 1 && (won || self.r.chance(0.4)) {
            let at = open + dur * 70 / 100;
            self.push(at, opp(OpportunityState::Open, "Negotiation", amount, None));
        }
        let (state, label) = if won {
            (OpportunityState::Won, "Closed Won")
        } else {
            (OpportunityState::Lost, "Closed Lost")
        };
        self.push(close, opp(state, label, amount, None));
        // Meetings and calls with the buying group while the deal is open.
        for (n, &j) in group.iter().enumerate() {
            let count = if n == 0 {
                2 + self.r.idx(4)
            } else {
                1 + self.r.idx(2)
            };
            for _ in 0..count {
                let day = open + self.r.range(0, dur);
                let at = self.work_time(acc.utc_offset, day);
                let p = &acc.people[j];
                if p.alive(at) && at < close {
                    let kind = *self.r.pick(&["meeting", "sales_call", "sales_call"]);
                    let pid = p.id.clone();
                    self.act_person(at, &pid, kind, Map::new());
                }
            }
        }
        acc.busy_until = close;
        if close >= self.end || !won {
            return;
        }
        match kind {
            OpportunityKind::NewBusiness => {
                acc.customer = true;
                acc.arr = amount;
                let at = close + self.r.range(MINUTE, 2 * HOUR);
                self.push(
                    at,
                    EventBody::Account {
                        account: acc.id.clone(),
                        attrs: attrs([("type", "customer".into())]),
                    },
                );
                for _ in 0..1 + self.r.idx(2) {
                    let t = close + self.r.range(90 * DAY, 330 * DAY);
                    heap.push(Reverse((t, Episode::Expansion)));
                }
                self.renewals(acc, primary, close);
            }
            _ => acc.arr += amount,
        }
    }

    /// Yearly renewals after a won new-business deal, until one is lost.
    fn renewals(&mut self, acc: &Account, primary: usize, won_at: i64) {
        let mut anniversary = won_at + 365 * DAY;
        let mut amount = acc.arr;
        loop {
            let lead = self.r.range(50 * DAY, 75 * DAY);
            let open = self.work_time(acc.utc_offset, anniversary - lead);
            if open >= self.end {
                return;
            }
            self.opps += 1;
            let id = format!("o{}", self.opps);
            amount = ((amount * (1.0 + 0.1 * self.r.f())) / 500.0).round() * 500.0;
            let p = &acc.people[primary];
            let contacts = p.alive(open).then(|| {
                vec![OpportunityContact {
                    person: p.id.clone(),
                    role: Some("champion".into()),
                    primary: true,
                }]
            });
            let opp = |state, stage: &str, contacts| EventBody::Opportunity {
                opportunity: id.clone(),
                account: Some(acc.id.clone()),
                kind: Some(OpportunityKind::Renewal),
                state,
                stage: Some(stage.to_string()),
                amount: Some(amount),
                contacts,
            };
            self.push(open, opp(OpportunityState::Open, "Proposal", contacts));
            let nego = open + self.r.range(10 * DAY, 30 * DAY);
            self.push(nego, opp(OpportunityState::Open, "Negotiation", None));
            let slip = self.r.range(-10 * DAY, 10 * DAY);
            let close = self.work_time(acc.utc_offset, anniversary + slip);
            let close = close.max(nego + DAY);
            let won = self.r.chance(0.85);
            if won {
                self.push(close, opp(OpportunityState::Won, "Closed Won", None));
            } else {
                self.push(close, opp(OpportunityState::Lost, "Closed Lost", None));
                return;
            }
            anniversary += 365 * DAY;
        }
    }

    /// Puts the facts in a loose export order and numbers them.
    fn finish(mut self) -> Vec<Event> {
        let out = std::mem::take(&mut self.out);
        let mut keyed: Vec<(i64, u32)> = out
            .iter()
            .enumerate()
            .map(|(n, (at, _))| {
                let u = self.r.f();
                let delay = if u < 0.8 {
                    0
                } else if u < 0.95 {
                    self.r.range(0, 2 * HOUR)
                } else if u < 0.99 {
                    self.r.range(0, 2 * DAY)
                } else {
                    self.r.range(2 * DAY, 10 * DAY)
                };
                (at + delay, n as u32)
            })
            .collect();
        keyed.sort_unstable();
        let mut slots: Vec<Option<(i64, EventBody)>> = out.into_iter().map(Some).collect();
        keyed
            .into_iter()
            .enumerate()
            .filter_map(|(k, (_, n))| {
                let (at, body) = slots[n as usize].take()?;
                Some(Event {
                    id: format!("d{}", k + 1),
                    at: Timestamp(at * 1_000_000),
                    body,
                })
            })
            .collect()
    }
}

/// `jane.doe@acme.com` → `Jane.Doe@Acme.com`.
fn capitalise_parts(s: &mut String) {
    let mut out = String::with_capacity(s.len());
    let mut up = true;
    for c in s.chars() {
        if up {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        up = matches!(c, '.' | '@');
    }
    *s = out;
}
