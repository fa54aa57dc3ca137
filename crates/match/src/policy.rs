//! The matching policy a model states in its `[matching]` section.

/// How to choose between several accounts that match equally well (e.g. subsidiaries
/// sharing one email domain). Whatever the rule, the account id breaks any remaining tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TieBreak {
    /// The account with the most people assigned to it explicitly by the events.
    #[default]
    MostPeople,
    /// The account seen first (earliest `account` event).
    Oldest,
    /// The account with the largest `employees` attribute.
    LargestEmployees,
}

impl TieBreak {
    /// Every rule, in the order the model documentation lists them.
    pub const ALL: [TieBreak; 3] = [
        TieBreak::MostPeople,
        TieBreak::Oldest,
        TieBreak::LargestEmployees,
    ];

    /// The name used in the model file (`most_people`, `oldest`, `largest_employees`).
    pub fn as_str(self) -> &'static str {
        match self {
            TieBreak::MostPeople => "most_people",
            TieBreak::Oldest => "oldest",
            TieBreak::LargestEmployees => "largest_employees",
        }
    }

    /// Parses a model file name of a rule.
    pub fn parse(s: &str) -> Option<TieBreak> {
        TieBreak::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Which people count as the same human.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupRules {
    /// Merge people whose normalised emails are equal (the newcomer into the earliest).
    pub merge_duplicates: bool,
    /// Treat `jo+news@acme.com` as `jo@acme.com`.
    pub ignore_plus_addressing: bool,
    /// Treat dots in Gmail local parts as absent (`j.o@gmail.com` = `jo@gmail.com`), as Gmail
    /// itself does.
    pub ignore_gmail_dots: bool,
}

impl Default for DedupRules {
    fn default() -> Self {
        DedupRules {
            merge_duplicates: false,
            ignore_plus_addressing: true,
            ignore_gmail_dots: true,
        }
    }
}

/// What a model says about matching people to accounts and merging duplicates.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchPolicy {
    /// Match people who arrive without an account to a known account.
    pub enabled: bool,
    /// Match by the email's domain.
    pub by_domain: bool,
    /// Match by the company name the person gave (exact after normalising, then fuzzy).
    pub by_company: bool,
    /// Matches below this confidence (0..=1) are not made.
    pub min_confidence: f64,
    /// How to choose between accounts that match equally well.
    pub tie_break: TieBreak,
    /// Domains treated as free-mail in addition to the built-in list.
    pub extra_free_mail: Vec<String>,
    /// Person dedup.
    pub dedup: DedupRules,
}

impl Default for MatchPolicy {
    /// Nothing matched, nothing merged: what a model without a `[matching]` section gets.
    fn default() -> Self {
        MatchPolicy {
            enabled: false,
            by_domain: true,
            by_company: true,
            min_confidence: 0.85,
            tie_break: TieBreak::MostPeople,
            extra_free_mail: Vec::new(),
            dedup: DedupRules::default(),
        }
    }
}

impl MatchPolicy {
    /// Matching and dedup both on, with the default thresholds.
    pub fn enabled() -> MatchPolicy {
        MatchPolicy {
            enabled: true,
            dedup: DedupRules {
                merge_duplicates: true,
                ..DedupRules::default()
            },
            ..MatchPolicy::default()
        }
    }

    /// Whether this policy can change where any person's events live.
    pub fn is_active(&self) -> bool {
        self.enabled || self.dedup.merge_duplicates
    }
}
