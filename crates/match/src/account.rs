//! Matching a person to one of the known accounts.

use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

use crate::normalize::{
    company_similarity, email_domain, is_free_mail, normalize_company, normalize_domain,
};
use crate::policy::{MatchPolicy, TieBreak};

/// Confidence of a match on the email's exact domain, one account.
const DOMAIN: f64 = 0.99;
/// Confidence of a match on a parent of the email's domain (`eu.acme.com` → `acme.com`).
const PARENT_DOMAIN: f64 = 0.95;
/// Confidence when a shared domain was settled by the tie-break rule, not by the data.
const DOMAIN_TIE: f64 = 0.9;
/// Confidence of an exact normalised match on the account's current name.
const NAME: f64 = 0.95;
/// Confidence of an exact normalised match on a former name.
const FORMER_NAME: f64 = 0.92;
/// A fuzzy match's confidence is its similarity, capped here (fuzzy never beats exact).
const FUZZY_CAP: f64 = 0.9;
/// A shared-domain candidate whose name is at least this similar to the person's company is
/// the one the person named.
const PICK_BY_NAME: f64 = 0.9;

/// One account as the index sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountRecord {
    /// The account's id.
    pub id: String,
    /// Every name the account has had, the current one first.
    pub names: Vec<String>,
    /// Its domains or websites (any form [`normalize_domain`] accepts).
    pub domains: Vec<String>,
    /// People assigned to it explicitly by the events (for [`TieBreak::MostPeople`]).
    pub people: u64,
    /// When it was first seen, in any unit that orders (for [`TieBreak::Oldest`]).
    pub first_seen: i64,
    /// Its `employees` attribute (for [`TieBreak::LargestEmployees`]).
    pub employees: Option<f64>,
}

/// What a person offers for matching.
#[derive(Debug, Clone, Copy, Default)]
pub struct PersonFacts<'a> {
    /// The person's email, as given.
    pub email: Option<&'a str>,
    /// The company name the person gave.
    pub company: Option<&'a str>,
}

/// How a match was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The email's domain is the account's.
    Domain,
    /// The normalised company name equals one of the account's names.
    CompanyExact,
    /// The company name is similar enough to one of the account's names.
    CompanyFuzzy,
}

impl Method {
    /// The stored name (`domain`, `company_exact`, `company_fuzzy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Domain => "domain",
            Method::CompanyExact => "company_exact",
            Method::CompanyFuzzy => "company_fuzzy",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Method> {
        [Method::Domain, Method::CompanyExact, Method::CompanyFuzzy]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// The account a person was matched to, how sure, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountMatch {
    /// The account's id.
    pub account: String,
    /// How sure the match is, 0..=1.
    pub confidence: f64,
    /// How it was made.
    pub method: Method,
    /// One or two plain sentences saying why, for `waterfall why`.
    pub explanation: String,
}

/// The known accounts, indexed by domain, normalised name and name words.
#[derive(Debug, Clone, Default)]
pub struct AccountIndex {
    /// Sorted by id, one record per id.
    accounts: Vec<AccountRecord>,
    /// Per account: its normalised names, current first.
    names: Vec<Vec<String>>,
    by_domain: FxHashMap<String, Vec<usize>>,
    by_name: FxHashMap<String, Vec<(usize, usize)>>,
    by_word: FxHashMap<String, Vec<usize>>,
}

impl AccountIndex {
    /// Indexes accounts. Records with the same id are combined, so the result never depends
    /// on the order of `records`.
    pub fn new(records: Vec<AccountRecord>) -> AccountIndex {
        let mut by_id: std::collections::BTreeMap<String, AccountRecord> = Default::default();
        for r in records {
            match by_id.get_mut(&r.id) {
                None => {
                    by_id.insert(r.id.clone(), r);
                }
                Some(acc) => {
                    for n in r.names {
                        if !acc.names.contains(&n) {
                            acc.names.push(n);
                        }
                    }
                    for d in r.domains {
                        if !acc.domains.contains(&d) {
                            acc.domains.push(d);
                        }
                    }
                    acc.people += r.people;
                    acc.first_seen = acc.first_seen.min(r.first_seen);
                    acc.employees = match (acc.employees, r.employees) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
        }
        let mut ix = AccountIndex {
            accounts: by_id.into_values().collect(),
            ..AccountIndex::default()
        };
        for (i, acc) in ix.accounts.iter().enumerate() {
            let mut norms: Vec<String> = Vec::new();
            for n in &acc.names {
                let norm = normalize_company(n);
                if !norm.is_empty() && !norms.contains(&norm) {
                    norms.push(norm);
                }
            }
            for (j, norm) in norms.iter().enumerate() {
                ix.by_name.entry(norm.clone()).or_default().push((i, j));
                for key in word_keys(norm) {
                    let list = ix.by_word.entry(key).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
            let mut domains = BTreeSet::new();
            for d in &acc.domains {
                if let Some(d) = normalize_domain(d) {
                    domains.insert(d);
                }
            }
            for d in domains {
                ix.by_domain.entry(d).or_default().push(i);
            }
            ix.names.push(norms);
        }
        ix
    }

    /// How many accounts are indexed.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether no account is indexed.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    fn label(&self, i: usize) -> String {
        let acc = &self.accounts[i];
        match acc.names.first() {
            Some(n) => format!("{} ({n:?})", acc.id),
            None => acc.id.clone(),
        }
    }

    /// Orders equally good candidates by the tie-break rule, then by id; returns the order
    /// and a sentence describing the decision.
    fn tie_break(&self, mut cands: Vec<usize>, rule: TieBreak) -> (Vec<usize>, String) {
        let accs = &self.accounts;
        match rule {
            TieBreak::MostPeople => cands.sort_by(|&a, &b| {
                accs[b]
                    .people
                    .cmp(&accs[a].people)
                    .then_with(|| accs[a].id.cmp(&accs[b].id))
            }),
            TieBreak::Oldest => cands.sort_by(|&a, &b| {
                accs[a]
                    .first_seen
                    .cmp(&accs[b].first_seen)
                    .then_with(|| accs[a].id.cmp(&accs[b].id))
            }),
            TieBreak::LargestEmployees => cands.sort_by(|&a, &b| {
                let e = |i: usize| accs[i].employees.unwrap_or(-1.0);
                e(b).total_cmp(&e(a))
                    .then_with(|| accs[a].id.cmp(&accs[b].id))
            }),
        }
        let detail: Vec<String> = cands
            .iter()
            .map(|&i| {
                let a = &accs[i];
                match rule {
                    TieBreak::MostPeople if a.people == 1 => format!("{}: 1 person", a.id),
                    TieBreak::MostPeople => format!("{}: {} people", a.id, a.people),
                    TieBreak::Oldest => format!("{}: first seen {}", a.id, a.first_seen),
                    TieBreak::LargestEmployees => match a.employees {
                        Some(e) => format!("{}: {e} employees", a.id),
                        None => format!("{}: employees unknown", a.id),
                    },
                }
            })
            .collect();
        let why = format!(
            "tie broken by the model's rule `{}` ({}), then by account id",
            rule.as_str(),
            detail.join(", ")
        );
        (cands, why)
    }

    /// The best similarity of `company` to any name of account `i`: (similarity, name index).
    fn best_name(&self, i: usize, company: &str) -> (f64, usize) {
        let mut best = (0.0, 0);
        for (j, n) in self.names[i].iter().enumerate() {
            let s = company_similarity(company, n);
            if s > best.0 {
                best = (s, j);
            }
        }
        best
    }

    fn name_phrase(&self, i: usize, j: usize) -> String {
        let acc = &self.accounts[i];
        let raw = acc
            .names
            .iter()
            .find(|n| normalize_company(n) == self.names[i][j])
            .cloned()
            .unwrap_or_default();
        if j == 0 {
            format!("the name of account {}", self.label(i))
        } else {
            format!("{raw:?}, a former name of account {}", self.label(i))
        }
    }
}

/// Keys under which a normalised name is found by fuzzy matching: each word, and the first
/// three letters of each word (so a typo later in a word still finds it).
fn word_keys(norm: &str) -> impl Iterator<Item = String> + '_ {
    norm.split(' ').filter(|w| !w.is_empty()).flat_map(|w| {
        let prefix: String = w.chars().take(3).collect();
        [w.to_string(), format!("~{prefix}")]
    })
}

/// Finds the account a person belongs to, or `None` when nothing reaches the policy's
/// minimum confidence (or matching is off).
///
/// Order of evidence: the email's domain (unless free-mail; a subdomain falls back to its
/// parent), then the exact normalised company name (current names before former ones), then
/// the most similar name. Candidates that match equally well are ordered by the policy's
/// tie-break, then by account id, so the answer never depends on insertion order.
pub fn match_person(
    index: &AccountIndex,
    person: &PersonFacts<'_>,
    policy: &MatchPolicy,
) -> Option<AccountMatch> {
    if !policy.enabled || index.is_empty() {
        return None;
    }
    let company = person
        .company
        .map(normalize_company)
        .filter(|c| !c.is_empty());
    let mut notes: Vec<String> = Vec::new();

    // 1. Email domain.
    if let (true, Some(domain)) = (policy.by_domain, person.email.and_then(email_domain)) {
        if is_free_mail(&domain, &policy.extra_free_mail) {
            notes.push(format!(
                "{domain} is a free-mail domain, so it says nothing about the employer"
            ));
        } else if let Some(m) = match_domain(index, &domain, company.as_deref(), person, policy) {
            if m.confidence >= policy.min_confidence {
                return Some(m);
            }
            notes.push(format!(
                "{} (confidence {:.2} is below the model's minimum {:.2})",
                m.explanation, m.confidence, policy.min_confidence
            ));
        } else {
            notes.push(format!("no account has the domain {domain}"));
        }
    }
    if !policy.by_company {
        return None;
    }
    let company = company?;
    let raw_company = person.company.unwrap_or_default();
    let prefix = if notes.is_empty() {
        String::new()
    } else {
        format!("{}; ", notes.join("; "))
    };

    // 2. Exact normalised name: current names rank before former ones.
    if let Some(hits) = index.by_name.get(&company) {
        let best_rank = hits.iter().map(|&(_, j)| (j > 0) as u8).min().unwrap_or(1);
        let mut cands: Vec<usize> = hits
            .iter()
            .filter(|&&(_, j)| ((j > 0) as u8) == best_rank)
            .map(|&(i, _)| i)
            .collect();
        cands.sort_unstable();
        cands.dedup();
        let confidence = if best_rank == 0 { NAME } else { FORMER_NAME };
        let (order, tie) = index.tie_break(cands, policy.tie_break);
        let i = order[0];
        let j = hits
            .iter()
            .filter(|&&(a, _)| a == i)
            .map(|&(_, j)| j)
            .min()
            .unwrap_or(0);
        let mut explanation = format!(
            "{prefix}company {raw_company:?} normalises to {company:?}, {}",
            index.name_phrase(i, j)
        );
        if order.len() > 1 {
            explanation.push_str(&format!("; {} accounts have that name, {tie}", order.len()));
        }
        if confidence >= policy.min_confidence {
            return Some(AccountMatch {
                account: index.accounts[i].id.clone(),
                confidence,
                method: Method::CompanyExact,
                explanation,
            });
        }
        return None;
    }

    // 3. Fuzzy name, among accounts sharing a word or a word's first letters.
    let mut cands: Vec<usize> = word_keys(&company)
        .filter_map(|k| index.by_word.get(&k))
        .flatten()
        .copied()
        .collect();
    cands.sort_unstable();
    cands.dedup();
    let mut scored: Vec<(usize, f64, usize)> = cands
        .into_iter()
        .map(|i| {
            let (s, j) = index.best_name(i, &company);
            (i, s, j)
        })
        .filter(|&(_, s, _)| s.min(FUZZY_CAP) >= policy.min_confidence)
        .collect();
    let best = scored.iter().map(|s| s.1).fold(0.0, f64::max);
    scored.retain(|s| s.1 >= best - 1e-9);
    if scored.is_empty() {
        return None;
    }
    let (order, tie) = index.tie_break(scored.iter().map(|s| s.0).collect(), policy.tie_break);
    let i = order[0];
    let &(_, sim, j) = scored.iter().find(|s| s.0 == i).expect("candidate scored");
    let mut explanation = format!(
        "{prefix}company {raw_company:?} ({company:?}) is {:.0}% similar to {:?}, {}",
        sim * 100.0,
        index.names[i][j],
        index.name_phrase(i, j)
    );
    if order.len() > 1 {
        explanation.push_str(&format!("; {} accounts are as similar, {tie}", order.len()));
    }
    Some(AccountMatch {
        account: index.accounts[i].id.clone(),
        confidence: sim.min(FUZZY_CAP),
        method: Method::CompanyFuzzy,
        explanation,
    })
}

/// The domain step: the email's domain, else its nearest parent domain that an account has.
fn match_domain(
    index: &AccountIndex,
    domain: &str,
    company: Option<&str>,
    person: &PersonFacts<'_>,
    policy: &MatchPolicy,
) -> Option<AccountMatch> {
    let mut d = domain;
    let (hit, exact) = loop {
        if let Some(c) = index.by_domain.get(d) {
            break (c.clone(), d == domain);
        }
        let (_, parent) = d.split_once('.')?;
        if !parent.contains('.') {
            return None;
        }
        d = parent;
    };
    let base = if exact { DOMAIN } else { PARENT_DOMAIN };
    let via = if exact {
        format!("email domain {d}")
    } else {
        format!("email domain {domain} (under {d})")
    };
    if hit.len() == 1 {
        let i = hit[0];
        return Some(AccountMatch {
            account: index.accounts[i].id.clone(),
            confidence: base,
            method: Method::Domain,
            explanation: format!("{via} is the domain of account {}", index.label(i)),
        });
    }
    let ids: Vec<&str> = hit.iter().map(|&i| index.accounts[i].id.as_str()).collect();
    let shared = format!(
        "{via} is shared by {} accounts ({})",
        hit.len(),
        ids.join(", ")
    );
    // Subsidiaries sharing a domain: the company the person named picks one, if it clearly
    // names exactly one of them.
    if let Some(company) = company {
        let mut scored: Vec<(usize, f64, usize)> = hit
            .iter()
            .map(|&i| {
                let (s, j) = index.best_name(i, company);
                (i, s, j)
            })
            .filter(|s| s.1 >= PICK_BY_NAME)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if let Some(&(i, s, j)) = scored.first() {
            let clear = scored.get(1).is_none_or(|second| second.1 < s - 1e-9);
            if clear {
                return Some(AccountMatch {
                    account: index.accounts[i].id.clone(),
                    confidence: base,
                    method: Method::Domain,
                    explanation: format!(
                        "{shared}; company {:?} is {:.0}% similar to {}",
                        person.company.unwrap_or_default(),
                        s * 100.0,
                        index.name_phrase(i, j)
                    ),
                });
            }
        }
    }
    let (order, tie) = index.tie_break(hit, policy.tie_break);
    Some(AccountMatch {
        account: index.accounts[order[0]].id.clone(),
        confidence: DOMAIN_TIE.min(base),
        method: Method::Domain,
        explanation: format!("{shared}; {tie}"),
    })
}
