//! Person dedup: the same normalised email is the same human.

use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

use crate::normalize::normalize_email_with;
use crate::policy::DedupRules;

/// People by normalised email, each key pointing at its survivor: the person created
/// earliest, then the smallest id. Insertion order never changes the answer.
#[derive(Debug, Clone, Default)]
pub struct PersonIndex {
    rules: DedupRules,
    /// Normalised email → every (created, id) with it, sorted.
    by_email: FxHashMap<String, Vec<(i64, String)>>,
}

/// People who are the same human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateGroup {
    /// The normalised email they share.
    pub email: String,
    /// The person who survives: created earliest, then the smallest id.
    pub survivor: String,
    /// The others, by id; each is merged into the survivor.
    pub duplicates: Vec<String>,
}

impl PersonIndex {
    /// An empty index normalising emails by `rules`.
    pub fn new(rules: DedupRules) -> PersonIndex {
        PersonIndex {
            rules,
            by_email: FxHashMap::default(),
        }
    }

    /// The normalised form of an email under this index's rules.
    pub fn key(&self, email: &str) -> Option<String> {
        normalize_email_with(email, &self.rules)
    }

    /// Adds a person with their email and creation instant; returns the normalised email,
    /// or `None` when the email is not an address (the person is then never a duplicate).
    pub fn insert(&mut self, person: &str, email: &str, created: i64) -> Option<String> {
        let key = self.key(email)?;
        let list = self.by_email.entry(key.clone()).or_default();
        let item = (created, person.to_string());
        if let Err(at) = list.binary_search(&item) {
            list.insert(at, item);
        }
        Some(key)
    }

    /// The person an email already belongs to (the survivor of its group), if any.
    pub fn find_duplicate(&self, email: &str) -> Option<&str> {
        let key = self.key(email)?;
        self.by_email
            .get(&key)
            .and_then(|l| l.first())
            .map(|(_, id)| id.as_str())
    }

    /// Every group of two or more people sharing an email, sorted by email.
    pub fn groups(&self) -> Vec<DuplicateGroup> {
        let sorted: BTreeMap<&String, &Vec<(i64, String)>> =
            self.by_email.iter().filter(|(_, l)| l.len() > 1).collect();
        sorted
            .into_iter()
            .map(|(email, l)| {
                let mut duplicates: Vec<String> = l[1..].iter().map(|(_, id)| id.clone()).collect();
                duplicates.sort();
                DuplicateGroup {
                    email: email.clone(),
                    survivor: l[0].1.clone(),
                    duplicates,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_from_two_sources_share_the_earliest_survivor() {
        let mut a = PersonIndex::new(DedupRules::default());
        a.insert("crm-17", "Jo.Smith@Acme.com", 200);
        a.insert("form-9", "jo.smith+webinar@acme.com", 100);
        a.insert("other", "al@acme.com", 50);
        assert_eq!(a.find_duplicate("JO.SMITH@acme.com"), Some("form-9"));
        assert_eq!(a.find_duplicate("nobody@acme.com"), None);
        let mut b = PersonIndex::new(DedupRules::default());
        b.insert("other", "al@acme.com", 50);
        b.insert("form-9", "jo.smith+webinar@acme.com", 100);
        b.insert("crm-17", "Jo.Smith@Acme.com", 200);
        assert_eq!(a.groups(), b.groups());
        assert_eq!(
            a.groups(),
            vec![DuplicateGroup {
                email: "jo.smith@acme.com".into(),
                survivor: "form-9".into(),
                duplicates: vec!["crm-17".into()],
            }]
        );
    }

    #[test]
    fn same_instant_falls_back_to_the_smaller_id() {
        let mut a = PersonIndex::new(DedupRules::default());
        a.insert("p2", "x@acme.com", 7);
        a.insert("p10", "X@ACME.COM", 7);
        assert_eq!(a.groups()[0].survivor, "p10");
        assert_eq!(a.insert("p3", "not-an-email", 1), None);
    }
}
