//! Lead-to-account matching and person dedup for Waterfall.
//!
//! People often arrive without an account: a form fill with a work email, a webinar list with
//! a typed-in company name. This crate decides, deterministically, which known account such
//! a person belongs to, how sure it is, and why:
//!
//! 1. by **email domain** (`jo@acme.com` → the account whose domain is `acme.com`), skipping
//!    free-mail domains (`gmail.com`, `gmx.de`, …); when several accounts share a domain
//!    (subsidiaries), the person's company name picks one, else the policy's tie-break;
//! 2. by **normalised company name**, exact (`"Acme, Inc."` = `"ACME Incorporated"`), against
//!    every name an account has ever had (a renamed company still matches its old name);
//! 3. by **fuzzy company name** (token-aware similarity) above the policy's minimum confidence.
//!
//! It also finds duplicate people: the same email, with case and `+tag` plus-addressing
//! normalised, is the same human ([`PersonIndex`]).
//!
//! Pure: no I/O, no clock. The same inputs always give the same answer, whatever the order
//! in which accounts or people were added (the final tie-break is the account or person id).
//!
//! ```
//! use waterfall_match::{match_person, AccountIndex, AccountRecord, MatchPolicy, Method, PersonFacts};
//!
//! let index = AccountIndex::new(vec![AccountRecord {
//!     id: "a1".into(),
//!     names: vec!["ACME Incorporated".into()],
//!     domains: vec!["acme.com".into()],
//!     ..AccountRecord::default()
//! }]);
//! let policy = MatchPolicy::enabled();
//! let m = match_person(&index, &PersonFacts { email: Some("jo@gmail.com"), company: Some("Acme, Inc.") }, &policy).unwrap();
//! assert_eq!(m.account, "a1");
//! assert_eq!(m.method, Method::CompanyExact);
//! ```

#![forbid(unsafe_code)]

mod account;
mod normalize;
mod person;
mod policy;

pub use account::{match_person, AccountIndex, AccountMatch, AccountRecord, Method, PersonFacts};
pub use normalize::{
    company_similarity, email_domain, is_free_mail, normalize_company, normalize_domain,
    normalize_email, normalize_email_with,
};
pub use person::{DuplicateGroup, PersonIndex};
pub use policy::{DedupRules, MatchPolicy, TieBreak};
