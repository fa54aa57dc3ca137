//! Normal forms of emails, domains and company names, and company-name similarity.

use crate::policy::DedupRules;

/// Free-mail providers: an address there says nothing about the person's employer.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "ymail.com",
    "rocketmail.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "tutanota.com",
    "zoho.com",
    "mail.com",
    "gmx.com",
    "gmx.net",
    "web.de",
    "t-online.de",
    "freenet.de",
    "mail.ru",
    "bk.ru",
    "inbox.ru",
    "list.ru",
    "rambler.ru",
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "naver.com",
    "hanmail.net",
    "laposte.net",
    "orange.fr",
    "free.fr",
    "libero.it",
    "seznam.cz",
    "wp.pl",
    "o2.pl",
    "interia.pl",
    "fastmail.com",
    "hey.com",
    "comcast.net",
    "verizon.net",
    "att.net",
    "btinternet.com",
    "rediffmail.com",
];

/// Providers with one domain per country (`gmx.de`, `yahoo.co.uk`, `yandex.ru`, …): any
/// domain whose first label is one of these is free-mail.
const FREE_MAIL_FAMILIES: &[&str] = &[
    "gmx",
    "yandex",
    "yahoo",
    "hotmail",
    "outlook",
    "live",
    "windowslive",
];

/// Legal-form words that say nothing about which company it is.
const LEGAL_SUFFIXES: &[&str] = &[
    "inc",
    "incorporated",
    "llc",
    "llp",
    "lp",
    "ltd",
    "limited",
    "gmbh",
    "mbh",
    "kg",
    "ug",
    "corp",
    "corporation",
    "co",
    "company",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "ag",
    "se",
    "plc",
    "bv",
    "nv",
    "oy",
    "ab",
    "as",
    "asa",
    "aps",
    "pty",
    "pte",
    "kk",
    "pvt",
    "private",
    "holding",
    "holdings",
    "group",
];

/// Normalises an email for identity: trimmed, lowercase, `+tag` removed from the local part.
/// `None` when it is not an address (no `@`, or an empty side).
pub fn normalize_email(email: &str) -> Option<String> {
    normalize_email_with(email, &DedupRules::default())
}

/// [`normalize_email`] under explicit rules (plus-addressing and Gmail dots may be kept).
pub fn normalize_email_with(email: &str, rules: &DedupRules) -> Option<String> {
    let email = email.trim().trim_start_matches("mailto:").to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    let domain = normalize_domain(domain)?;
    let mut local = local.trim().to_string();
    if rules.ignore_plus_addressing {
        if let Some(i) = local.find('+') {
            local.truncate(i);
        }
    }
    let domain = if domain == "googlemail.com" {
        "gmail.com".to_string()
    } else {
        domain
    };
    if rules.ignore_gmail_dots && domain == "gmail.com" {
        local.retain(|c| c != '.');
    }
    if local.is_empty() || local.contains('@') {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

/// The normalised domain of an email address (`Jo@Mail.Acme.COM` → `mail.acme.com`).
pub fn email_domain(email: &str) -> Option<String> {
    let (_, domain) = email.trim().rsplit_once('@')?;
    normalize_domain(domain)
}

/// Normalises a domain or website as written in account data: lowercase, no scheme, no
/// `www.`, no path, port or trailing dot. `None` when nothing domain-like is left.
pub fn normalize_domain(s: &str) -> Option<String> {
    let s = s.trim().to_lowercase();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(&s);
    let s = s.split(['/', '?', '#']).next().unwrap_or("");
    let s = s.split(':').next().unwrap_or("");
    let s = s.trim_end_matches('.');
    let s = s.strip_prefix("www.").unwrap_or(s);
    let ok = s.contains('.')
        && !s.starts_with('.')
        && s.split('.').all(|l| !l.is_empty())
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    ok.then(|| s.to_string())
}

/// Whether a (normalised) domain belongs to a free-mail provider, built in or listed in
/// `extra`.
pub fn is_free_mail(domain: &str, extra: &[String]) -> bool {
    if FREE_MAIL.contains(&domain) || extra.iter().any(|d| d == domain) {
        return true;
    }
    let first = domain.split('.').next().unwrap_or("");
    FREE_MAIL_FAMILIES.contains(&first)
}

/// Normalises a company name for comparison: lowercase, accents and punctuation gone
/// (`&` becomes `and`), legal-form words (`Inc`, `GmbH`, `Ltd`, …) and a leading `the`
/// removed, whitespace collapsed. `"Acme, Inc."` and `"ACME Incorporated"` both give `"acme"`.
pub fn normalize_company(name: &str) -> String {
    let mut cleaned = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '&' | '+' => cleaned.push_str(" and "),
            // "A.C.M.E." and "Acme's" keep their letters together.
            '.' | '\'' | '’' => {}
            c if c.is_alphanumeric() => cleaned.extend(fold(c).to_lowercase()),
            _ => cleaned.push(' '),
        }
    }
    let mut tokens: Vec<&str> = cleaned.split_whitespace().collect();
    if tokens.first() == Some(&"the") && tokens.len() > 1 {
        tokens.remove(0);
    }
    // Legal forms are stripped from the end only ("Company" in "The Company Store" stays),
    // but never down to nothing ("Holding AG" keeps "holding").
    while tokens.len() > 1
        && tokens
            .last()
            .is_some_and(|t| LEGAL_SUFFIXES.contains(t) || *t == "and")
    {
        tokens.pop();
    }
    let tokens: Vec<&str> = tokens
        .into_iter()
        .map(|t| match t {
            "intl" => "international",
            "tech" => "technologies",
            "technology" => "technologies",
            "sys" => "systems",
            "svcs" | "svc" => "services",
            "mfg" => "manufacturing",
            t => t,
        })
        .collect();
    tokens.join(" ")
}

/// Folds common Latin accents to their base letter (`é` → `e`, `ß` stays).
fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'a',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ç' | 'Ç' => 'c',
        'ñ' | 'Ñ' => 'n',
        'ý' | 'ÿ' | 'Ý' => 'y',
        c => c,
    }
}

/// Similarity (0..=1) of two *normalised* company names: 1 when their word sets are equal
/// (word order ignored), else one minus the edit distance over the longer length, of the
/// names as written or word-sorted, whichever is closer. Relative edit distance forgives a
/// typo in a long name (`acme sofware` / `acme software`: 0.92) but not a different short
/// name (`globe` / `globex`: 0.83).
pub fn company_similarity(a: &str, b: &str) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut ta: Vec<&str> = a.split(' ').collect();
    let mut tb: Vec<&str> = b.split(' ').collect();
    ta.sort_unstable();
    ta.dedup();
    tb.sort_unstable();
    tb.dedup();
    if ta == tb {
        return 1.0;
    }
    let (sa, sb) = (ta.join(" "), tb.join(" "));
    strsim::normalized_levenshtein(a, b).max(strsim::normalized_levenshtein(&sa, &sb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalise_case_plus_and_gmail_dots() {
        let check = |input: &str, want: Option<&str>| {
            assert_eq!(normalize_email(input).as_deref(), want, "{input}");
        };
        check("  Jo.Smith+Webinar@ACME.com ", Some("jo.smith@acme.com"));
        check("jo@acme.com", Some("jo@acme.com"));
        check("J.O.Smith+x@googlemail.com", Some("josmith@gmail.com"));
        check("mailto:jo@acme.com", Some("jo@acme.com"));
        check("not an email", None);
        check("@acme.com", None);
        check("+news@acme.com", None);
        check("jo@localhost", None);
        let keep = DedupRules {
            ignore_plus_addressing: false,
            ignore_gmail_dots: false,
            ..DedupRules::default()
        };
        assert_eq!(
            normalize_email_with("J.O+x@gmail.com", &keep).as_deref(),
            Some("j.o+x@gmail.com")
        );
    }

    #[test]
    fn domains_normalise_websites() {
        assert_eq!(
            normalize_domain("https://www.Acme.com/about").as_deref(),
            Some("acme.com")
        );
        assert_eq!(normalize_domain("acme.com.").as_deref(), Some("acme.com"));
        assert_eq!(normalize_domain("acme").as_deref(), None);
        assert_eq!(
            email_domain("a@EU.Acme.com").as_deref(),
            Some("eu.acme.com")
        );
    }

    #[test]
    fn free_mail_is_recognised_by_name_and_family() {
        for d in [
            "gmail.com",
            "gmx.de",
            "gmx.at",
            "yandex.ru",
            "yahoo.co.uk",
            "web.de",
            "qq.com",
            "163.com",
            "proton.me",
        ] {
            assert!(is_free_mail(d, &[]), "{d}");
        }
        for d in ["acme.com", "gmxtools.com", "acme.de"] {
            assert!(!is_free_mail(d, &[]), "{d}");
        }
        assert!(is_free_mail("isp.example", &["isp.example".into()]));
    }

    #[test]
    fn company_names_normalise_legal_forms_and_punctuation() {
        let check = |input: &str, want: &str| assert_eq!(normalize_company(input), want, "{input}");
        check("Acme, Inc.", "acme");
        check("ACME Incorporated", "acme");
        check("Acme Corp.", "acme");
        check("Müller GmbH & Co. KG", "muller");
        check("The Boring Company", "boring");
        check("Globex Intl. Ltd", "globex international");
        check("Initech, L.L.C.", "initech");
        check("  Umbrella   Holdings plc ", "umbrella");
        check("Johnson & Johnson", "johnson and johnson");
        check("Company", "company");
    }

    #[test]
    fn similarity_ignores_word_order_and_tolerates_typos() {
        assert_eq!(company_similarity("acme software", "software acme"), 1.0);
        assert!(company_similarity("acme sofware", "acme software") > 0.9);
        assert!(company_similarity("globe", "globex") < 0.85);
        assert!(company_similarity("acme", "acne") < 0.85);
        assert!(company_similarity("acme", "initech") < 0.6);
        assert_eq!(company_similarity("", "acme"), 0.0);
    }
}
