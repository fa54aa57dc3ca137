//! The checker: raw model file → compiled [`Model`], or every problem found.

use std::collections::HashMap;

use toml::Spanned;
use waterfall_core::OpportunityKind;

use crate::calendar::{Calendar, Duration};
use crate::diag::Diagnostics;
use crate::expr::{self, did_you_mean, Scope};
use crate::raw::*;
use crate::*;

/// Checks and compiles `text`.
pub(crate) fn compile(name: &str, text: &str) -> Result<Model, Diagnostics> {
    let mut d = Diagnostics::new(name, text);
    let raw: RawModel = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            let hint = toml_hint(&message);
            d.error("toml", span, format!("invalid model file: {message}"), hint);
            return Err(d);
        }
    };
    let mut c = Compiler {
        text,
        d,
        stage_names: Vec::new(),
        status_names: Vec::new(),
    };
    let model = c.model(raw);
    c.d.sort();
    match model {
        Some(m) if !c.d.has_errors() => Ok(Model {
            warnings: c.d.items,
            ..m
        }),
        _ => Err(c.d),
    }
}

fn toml_hint(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("check the spelling against docs/model.md (or use the JSON Schema from `waterfall schema` in your editor)".into())
    } else if message.contains("missing field") {
        Some("add the missing key".into())
    } else if message.contains("unknown variant") {
        Some("use one of the values listed".into())
    } else if message.contains("duplicate key") {
        Some("each key may appear once per table".into())
    } else {
        None
    }
}

struct Compiler<'t> {
    text: &'t str,
    d: Diagnostics,
    stage_names: Vec<String>,
    status_names: Vec<String>,
}

fn kind_of(k: RawKind) -> StageKind {
    match k {
        RawKind::Active => StageKind::Active,
        RawKind::Recycle => StageKind::Recycle,
        RawKind::Terminal => StageKind::Terminal,
    }
}

fn field_type(t: RawFieldType) -> FieldType {
    match t {
        RawFieldType::String => FieldType::String,
        RawFieldType::Number => FieldType::Number,
        RawFieldType::Bool => FieldType::Bool,
        RawFieldType::List => FieldType::List,
    }
}

fn opp_kind(k: RawOppKind) -> OpportunityKind {
    match k {
        RawOppKind::NewBusiness => OpportunityKind::NewBusiness,
        RawOppKind::Expansion => OpportunityKind::Expansion,
        RawOppKind::Renewal => OpportunityKind::Renewal,
    }
}

/// A rule in the making, with what the conflict check needs.
struct RuleInfo {
    line_span: Span,
    trigger_span: Span,
}

impl Compiler<'_> {
    /// Resolves a name among `names`, reporting an unknown one with a suggestion.
    fn resolve(
        &mut self,
        what: &'static str,
        names: &[String],
        s: &Spanned<String>,
    ) -> Option<u16> {
        let v = s.get_ref();
        if let Some(i) = names.iter().position(|n| n == v) {
            return Some(i as u16);
        }
        let hint = match did_you_mean(v, names.iter().map(|s| s.as_str())) {
            Some(m) => format!("did you mean `{m}`?"),
            None => {
                let plural = if what.ends_with('s') {
                    format!("{what}es")
                } else {
                    format!("{what}s")
                };
                format!("the {plural} are: {}", names.join(", "))
            }
        };
        let code = match what {
            "stage" => "unknown-stage",
            "status" => "unknown-status",
            "account stage" => "unknown-stage",
            _ => "unknown-name",
        };
        self.d
            .error(code, s.span(), format!("unknown {what} `{v}`"), Some(hint));
        None
    }

    fn stage(&mut self, s: &Spanned<String>) -> Option<StageId> {
        let names = std::mem::take(&mut self.stage_names);
        let r = self.resolve("stage", &names, s);
        self.stage_names = names;
        r
    }

    fn status(&mut self, s: &Spanned<String>) -> Option<StatusId> {
        let names = std::mem::take(&mut self.status_names);
        let r = self.resolve("status", &names, s);
        self.status_names = names;
        r
    }

    /// Reports duplicate names in a list of spanned names.
    fn duplicates<'a>(&mut self, what: &str, names: impl Iterator<Item = &'a Spanned<String>>) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for n in names {
            if n.get_ref().trim().is_empty() {
                self.d.error(
                    "empty-name",
                    n.span(),
                    format!("a {what} needs a name"),
                    None,
                );
                continue;
            }
            if let Some(first) = seen.get(n.get_ref().as_str()) {
                let line = self.text[..first.start].matches('\n').count() + 1;
                self.d.error(
                    "duplicate-name",
                    n.span(),
                    format!("duplicate {what} name `{}`", n.get_ref()),
                    Some(format!(
                        "`{}` is already declared on line {line}; rename one of them",
                        n.get_ref()
                    )),
                );
            } else {
                seen.insert(n.get_ref(), n.span());
            }
        }
    }

    fn line_of(&self, span: &Span) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// Compiles a condition written in a TOML string, mapping problems to file positions.
    fn condition(&mut self, s: &Spanned<String>, scope: &Scope<'_>) -> Option<Condition> {
        let span = s.span();
        match expr::compile(s.get_ref(), span.clone(), scope) {
            Ok(c) => Some(c),
            Err(problems) => {
                for p in problems {
                    let at = match p.chars {
                        Some((a, b)) => self.map_chars(s, a, b),
                        None => span.clone(),
                    };
                    self.d.error(p.code, at, p.message, p.hint);
                }
                None
            }
        }
    }

    /// Maps a char range inside a TOML string's value to a byte range in the file, exactly
    /// when the string is written without escapes, else to the whole string.
    fn map_chars(&self, s: &Spanned<String>, a: usize, b: usize) -> Span {
        let span = s.span();
        let Some(raw) = self.text.get(span.clone()) else {
            return span;
        };
        let (open, close) = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            (3, 3)
        } else if raw.starts_with('"') || raw.starts_with('\'') {
            (1, 1)
        } else {
            return span;
        };
        if raw.len() < open + close {
            return span;
        }
        let mut start = span.start + open;
        let mut inner = &raw[open..raw.len() - close];
        if open == 3 {
            if let Some(rest) = inner.strip_prefix('\n') {
                inner = rest;
                start += 1;
            } else if let Some(rest) = inner.strip_prefix("\r\n") {
                inner = rest;
                start += 2;
            }
        }
        if inner != s.get_ref() {
            return span;
        }
        let byte_at = |c: usize| inner.char_indices().nth(c).map_or(inner.len(), |(i, _)| i);
        let from = byte_at(a);
        let to = byte_at(b.max(a + 1)).max(from);
        start + from..start + to
    }

    fn model(&mut self, raw: RawModel) -> Option<Model> {
        let header_span = raw.model.span();
        let header = raw.model.into_inner();

        // Stages and statuses first: everything else refers to them.
        self.duplicates("stage", raw.stage.iter().map(|s| &s.get_ref().name));
        self.duplicates("status", raw.status.iter().map(|s| &s.get_ref().name));
        self.stage_names = raw
            .stage
            .iter()
            .map(|s| s.get_ref().name.get_ref().clone())
            .collect();
        self.status_names = raw
            .status
            .iter()
            .map(|s| s.get_ref().name.get_ref().clone())
            .collect();
        if raw.stage.is_empty() {
            self.d.error(
                "no-stages",
                header_span.clone(),
                "the model declares no stages",
                Some("add at least one `[[stage]]` table".into()),
            );
            return None;
        }
        if raw.stage.len() > usize::from(u16::MAX) || raw.status.len() > usize::from(u16::MAX) {
            self.d
                .error("too-many", header_span, "too many stages or statuses", None);
            return None;
        }
        let n = raw.stage.len();
        let initial_stage = self.stage(&header.initial_stage);
        let initial_status = header.initial_status.as_ref().and_then(|s| self.status(s));

        // Fields.
        let mut fields = Fields::default();
        for (root, map, out) in [
            ("person", &raw.fields.person, &mut fields.person),
            ("account", &raw.fields.account, &mut fields.account),
            ("activity", &raw.fields.activity, &mut fields.activity),
        ] {
            for (k, t) in map {
                if expr::builtin_names(root).contains(&k.as_str()) {
                    self.d.error(
                        "reserved-field",
                        t.span(),
                        format!("`{root}.{k}` is built in and cannot be declared"),
                        Some(format!(
                            "built-in fields of {root}: {}",
                            expr::builtin_names(root).join(", ")
                        )),
                    );
                    continue;
                }
                out.push((k.clone(), field_type(*t.get_ref())));
            }
        }
        let thresholds: Vec<(String, f64)> = raw
            .score
            .thresholds
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();

        // Stages, transitions and stage→status coupling.
        let mut allowed = vec![false; n * n];
        let mut stages = Vec::with_capacity(n);
        let mut stage_to_status = vec![None; n];
        let mut stage_status_spans: Vec<Option<Span>> = vec![None; n];
        for (i, s) in raw.stage.iter().enumerate() {
            let s_span = s.span();
            let s = s.get_ref();
            for next in &s.next {
                if next.get_ref() == "*" {
                    for j in 0..n {
                        allowed[i * n + j] = true;
                    }
                } else if let Some(j) = self.stage(next) {
                    allowed[i * n + usize::from(j)] = true;
                }
            }
            if let Some(st) = &s.status {
                stage_to_status[i] = self.status(st);
                stage_status_spans[i] = Some(st.span());
            }
            if s.definition.as_deref().unwrap_or("").trim().is_empty() {
                self.d.warning(
                    "no-definition",
                    s.name.span(),
                    format!("stage `{}` has no definition", s.name.get_ref()),
                    Some(
                        "write what it means for the people who report on it: `definition = \"…\"`"
                            .into(),
                    ),
                );
            }
            stages.push(Stage {
                name: s.name.get_ref().clone(),
                definition: s.definition.clone().unwrap_or_default(),
                owner: s.owner.map(|o| match o {
                    RawOwner::Marketing => Owner::Marketing,
                    RawOwner::Sales => Owner::Sales,
                }),
                kind: kind_of(s.kind),
                span: s_span,
            });
        }
        let any_to_any = header.any_to_any;
        let allows = |f: usize, t: usize| any_to_any || allowed[f * n + t];

        // Statuses and status→stage coupling.
        let mut statuses = Vec::with_capacity(raw.status.len());
        let mut status_to_stage = vec![None; raw.status.len()];
        for (i, s) in raw.status.iter().enumerate() {
            let s_span = s.span();
            let s = s.get_ref();
            if let Some(st) = &s.stage {
                status_to_stage[i] = self.stage(st);
            }
            let set_in: Vec<(StageId, Span)> = s
                .set_in
                .iter()
                .filter_map(|x| self.stage(x).map(|id| (id, x.span())))
                .collect();
            let set_in_ids: Vec<StageId> = set_in.iter().map(|(id, _)| *id).collect();
            if let (Some(target), Some(st)) = (status_to_stage[i], &s.stage) {
                for (from, from_span) in set_in {
                    let (f, t) = (usize::from(from), usize::from(target));
                    if f != t && !allows(f, t) {
                        self.d.error(
                            "coupling-unreachable",
                            from_span,
                            format!(
                                "status `{}` may be set in `{}`, but it moves the person to `{}`, which cannot follow `{}`",
                                s.name.get_ref(), self.stage_names[f], self.stage_names[t], self.stage_names[f]
                            ),
                            Some(format!(
                                "add `{}` to the `next` of stage `{}`, or remove `{}` from `set_in` (status coupled on line {})",
                                self.stage_names[t], self.stage_names[f], self.stage_names[f], self.line_of(&st.span())
                            )),
                        );
                    }
                }
            }
            if s.definition.as_deref().unwrap_or("").trim().is_empty() {
                self.d.warning(
                    "no-definition",
                    s.name.span(),
                    format!("status `{}` has no definition", s.name.get_ref()),
                    Some("write what it means for sales: `definition = \"…\"`".into()),
                );
            }
            statuses.push(Status {
                name: s.name.get_ref().clone(),
                definition: s.definition.clone().unwrap_or_default(),
                set_by: if s.set_by.is_empty() {
                    vec![Setter::Automation, Setter::Sales]
                } else {
                    s.set_by
                        .iter()
                        .map(|x| match x {
                            RawSetter::Automation => Setter::Automation,
                            RawSetter::Sales => Setter::Sales,
                        })
                        .collect()
                },
                set_in: set_in_ids,
                span: s_span,
            });
        }

        // The two coupling maps must agree.
        for (i, st) in stage_to_status.iter().enumerate() {
            let Some(x) = *st else { continue };
            if let Some(t) = status_to_stage[usize::from(x)] {
                if usize::from(t) != i {
                    let span = stage_status_spans[i]
                        .clone()
                        .unwrap_or(stages[i].span.clone());
                    self.d.error(
                        "coupling-conflict",
                        span,
                        format!(
                            "entering stage `{}` sets status `{}`, but status `{}` moves the person to stage `{}`",
                            stages[i].name, statuses[usize::from(x)].name, statuses[usize::from(x)].name, stages[usize::from(t)].name
                        ),
                        Some("stage and status logic disagree: couple the stage to a status that couples back to it".into()),
                    );
                }
            }
        }
        for (i, s) in raw.status.iter().enumerate() {
            let Some(t) = status_to_stage[i] else {
                continue;
            };
            if let Some(y) = stage_to_status[usize::from(t)] {
                if usize::from(y) != i {
                    let span = s.get_ref().stage.as_ref().map_or(s.span(), |x| x.span());
                    self.d.error(
                        "coupling-conflict",
                        span,
                        format!(
                            "status `{}` moves the person to stage `{}`, but entering `{}` sets status `{}`",
                            statuses[i].name, stages[usize::from(t)].name, stages[usize::from(t)].name, statuses[usize::from(y)].name
                        ),
                        Some("stage and status logic disagree: the stage would immediately replace the status that was set".into()),
                    );
                }
            }
        }

        // Journeys (rules refer to them).
        self.duplicates("journey", raw.journey.iter().map(|j| &j.get_ref().name));
        let journey_names: Vec<String> = raw
            .journey
            .iter()
            .map(|j| j.get_ref().name.get_ref().clone())
            .collect();
        let stage_names = self.stage_names.clone();
        let status_names = self.status_names.clone();
        let scope_all = Scope {
            roots: expr::ALL_ROOTS,
            person: &fields.person,
            account: &fields.account,
            activity: &fields.activity,
            thresholds: &thresholds,
            stages: &stage_names,
            statuses: &status_names,
            place: "rules",
        };
        let mut journeys = Vec::new();
        for j in &raw.journey {
            let j = j.get_ref();
            let condition = j.when.as_ref().and_then(|w| {
                self.condition(
                    w,
                    &Scope {
                        place: "journeys",
                        ..scope_all
                    },
                )
            });
            journeys.push(Journey {
                name: j.name.get_ref().clone(),
                definition: j.definition.clone().unwrap_or_default(),
                condition,
            });
        }

        // Rules.
        self.duplicates("rule", raw.rule.iter().map(|r| &r.get_ref().name));
        let mut rules = Vec::new();
        let mut infos = Vec::new();
        let mut timer_rules: Vec<(usize, Span)> = Vec::new();
        for r in &raw.rule {
            let r_span = r.span();
            let r = r.get_ref();
            if let Some((rule, info)) =
                self.rule(r, r_span, &scope_all, &thresholds, &journey_names)
            {
                if let (Trigger::Timer { .. }, Some(s)) = (&rule.trigger, &r.in_stage) {
                    timer_rules.push((rules.len(), s.span()));
                }
                rules.push(rule);
                infos.push(info);
            }
        }

        // Opportunity outcomes.
        let mut outcomes: [KindOutcomes; 3] = Default::default();
        let outcome_span = raw.outcome.as_ref().map(|o| o.span());
        let raw_out = raw.outcome.as_ref().map(|o| o.get_ref());
        for kind in OpportunityKind::ALL {
            let ko = raw_out.and_then(|o| match kind {
                OpportunityKind::NewBusiness => o.new_business.as_ref(),
                OpportunityKind::Expansion => o.expansion.as_ref(),
                OpportunityKind::Renewal => o.renewal.as_ref(),
            });
            let label = kind.as_str().replace('_', " ");
            let Some(ko) = ko else {
                let at = outcome_span.clone().unwrap_or(header_span.clone());
                self.d.error(
                    "lost-outcome-missing",
                    at,
                    format!("what a lost {label} opportunity does is not stated"),
                    Some(format!(
                        "add `[outcome.{}]` with `lost = {{ stage = \"…\", status = \"…\" }}` (or `lost = {{}}` to change nothing)",
                        kind.as_str()
                    )),
                );
                continue;
            };
            let ko_span = ko.span();
            let ko = ko.get_ref();
            if ko.lost.is_none() {
                self.d.error(
                    "lost-outcome-missing",
                    ko_span,
                    format!("what a lost {label} opportunity does is not stated"),
                    Some(format!(
                        "add `lost = {{ stage = \"…\", status = \"…\" }}` to `[outcome.{}]` (or `lost = {{}}` to change nothing); sales must know whether a lost {label} leaves people `Customer` or recycles them",
                        kind.as_str()
                    )),
                );
            }
            let one = |c: &mut Self, o: &Option<RawOutcome>| -> Option<Outcome> {
                let o = o.as_ref()?;
                let stage = o.stage.as_ref().and_then(|s| c.stage(s));
                let status = o.status.as_ref().and_then(|s| c.status(s));
                if let (Some(st), Some(x), Some(sp)) = (stage, status, &o.status) {
                    if let Some(t) = status_to_stage[usize::from(x)] {
                        if t != st {
                            c.d.error(
                                "coupling-conflict",
                                sp.span(),
                                format!(
                                    "this outcome sets stage `{}` and status `{}`, but status `{}` moves the person to `{}`",
                                    c.stage_names[usize::from(st)], c.status_names[usize::from(x)], c.status_names[usize::from(x)], c.stage_names[usize::from(t)]
                                ),
                                Some("stage and status logic disagree: pick a status that couples to this stage".into()),
                            );
                        }
                    }
                }
                Some(Outcome {
                    stage,
                    status,
                    account_type: o.account_type.clone(),
                })
            };
            let k = &mut outcomes[kind as usize];
            k.created = one(self, &ko.created);
            k.won = one(self, &ko.won);
            k.lost = one(self, &ko.lost);
        }

        // Scoring.
        let scope_fit = Scope {
            roots: expr::FIT_ROOTS,
            place: "fit rules",
            ..scope_all
        };
        let scope_acc = Scope {
            roots: expr::ACCOUNT_ROOTS,
            place: "account rules",
            ..scope_all
        };
        let mut scoring = Scoring {
            thresholds: thresholds.clone(),
            ..Scoring::default()
        };
        for (i, f) in raw.score.fit.iter().enumerate() {
            if let Some(condition) = self.condition(&f.when, &scope_fit) {
                scoring.fit.push(FitRule {
                    name: f.name.clone().unwrap_or_else(|| format!("fit #{}", i + 1)),
                    condition,
                    points: f.points,
                });
            }
        }
        for (i, f) in raw.score.account_fit.iter().enumerate() {
            if let Some(condition) = self.condition(&f.when, &scope_acc) {
                scoring.account_fit.push(FitRule {
                    name: f
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("account fit #{}", i + 1)),
                    condition,
                    points: f.points,
                });
            }
        }
        if let Some(e) = &raw.score.engagement {
            scoring.engagement_points = e.points.iter().map(|(k, v)| (k.clone(), *v)).collect();
            scoring.default_points = e.default_points;
            if let Some(h) = &e.half_life_days {
                if !(*h.get_ref() > 0.0 && h.get_ref().is_finite()) {
                    self.d.error(
                        "bad-value",
                        h.span(),
                        "`half_life_days` must be a positive number of days",
                        Some("e.g. `half_life_days = 30`; leave it out for no decay".into()),
                    );
                } else {
                    scoring.half_life_days = Some(*h.get_ref());
                }
            }
        }

        // Calendar.
        let calendar = raw
            .calendar
            .as_ref()
            .map(|c| self.calendar(c.get_ref()))
            .unwrap_or_default();

        let matching = raw
            .matching
            .as_ref()
            .map(|m| self.matching(m.get_ref()))
            .unwrap_or_default();

        // Account stages and rollup rules.
        self.duplicates(
            "account stage",
            raw.account_stage.iter().map(|s| &s.get_ref().name),
        );
        let acc_names: Vec<String> = raw
            .account_stage
            .iter()
            .map(|s| s.get_ref().name.get_ref().clone())
            .collect();
        let mut account_stages = Vec::new();
        for s in &raw.account_stage {
            let s_span = s.span();
            let s = s.get_ref();
            let mut next = Vec::new();
            for x in &s.next {
                if x.get_ref() == "*" {
                    next.extend(0..acc_names.len() as u16);
                } else if let Some(j) = self.resolve("account stage", &acc_names, x) {
                    next.push(j);
                }
            }
            account_stages.push(AccountStage {
                name: s.name.get_ref().clone(),
                definition: s.definition.clone().unwrap_or_default(),
                kind: kind_of(s.kind),
                next,
                span: s_span,
            });
        }
        let initial_account_stage = match (&header.initial_account_stage, account_stages.is_empty())
        {
            (Some(s), _) => self.resolve("account stage", &acc_names, s),
            (None, false) => {
                self.d.error(
                    "missing-initial",
                    header_span.clone(),
                    "account stages are declared but `initial_account_stage` is not",
                    Some("add `initial_account_stage = \"…\"` to [model]".into()),
                );
                None
            }
            (None, true) => None,
        };
        if let Some(init) = initial_account_stage {
            let edges: Vec<Vec<u16>> = account_stages.iter().map(|s| s.next.clone()).collect();
            let seen = reach(edges.len(), usize::from(init), |f, t| {
                edges[f].contains(&(t as u16))
            });
            for (i, s) in account_stages.iter().enumerate() {
                let name_span = raw.account_stage[i].get_ref().name.span();
                if !seen[i] {
                    self.d.error(
                        "unreachable-stage",
                        name_span.clone(),
                        format!("account stage `{}` cannot be reached from the initial account stage `{}`", s.name, acc_names[usize::from(init)]),
                        Some(format!("list `{}` in the `next` of an earlier account stage", s.name)),
                    );
                }
                if s.kind != StageKind::Terminal && !s.next.iter().any(|&t| usize::from(t) != i) {
                    self.d.error(
                        "dead-end",
                        name_span,
                        format!(
                            "account stage `{}` is not terminal but has no way out",
                            s.name
                        ),
                        Some("add a `next` list, or mark it `kind = \"terminal\"`".into()),
                    );
                }
            }
        }
        let mut account_rules = Vec::new();
        for r in &raw.account_rule {
            let r_span = r.span();
            let r = r.get_ref();
            let condition = self.condition(&r.when, &scope_acc);
            let set_stage = self.resolve("account stage", &acc_names, &r.set_stage);
            let only_from: Vec<u16> = r
                .only_from
                .iter()
                .filter_map(|x| self.resolve("account stage", &acc_names, x))
                .collect();
            // A guard stage the target may not follow would make the rule silently never fire.
            if let Some(to) = set_stage {
                for (x, &from) in r.only_from.iter().zip(&only_from) {
                    if from != to && !account_stages[usize::from(from)].next.contains(&to) {
                        self.d.error(
                            "transition-not-allowed",
                            x.span(),
                            format!(
                                "account rule `{}` moves accounts from `{}` to `{}`, which its `next` does not allow",
                                r.name.get_ref(),
                                acc_names[usize::from(from)],
                                acc_names[usize::from(to)]
                            ),
                            Some(format!(
                                "add `{}` to the `next` of account stage `{}`, or drop it from `only_from`",
                                acc_names[usize::from(to)],
                                acc_names[usize::from(from)]
                            )),
                        );
                    }
                }
            }
            if let (Some(condition), Some(set_stage)) = (condition, set_stage) {
                account_rules.push(AccountRule {
                    name: r.name.get_ref().clone(),
                    priority: r.priority,
                    condition,
                    set_stage,
                    only_from,
                    span: r_span,
                });
            }
        }
        account_rules.sort_by_key(|r| std::cmp::Reverse(r.priority));

        // Buying-group roles.
        self.duplicates("role", raw.role.iter().map(|r| &r.get_ref().name));
        let mut roles = Vec::new();
        for r in &raw.role {
            let r = r.get_ref();
            let condition = match &r.when {
                Some(w) => match self.condition(w, &scope_fit) {
                    Some(c) => Some(c),
                    None => continue,
                },
                None => None,
            };
            roles.push(Role {
                name: r.name.get_ref().clone(),
                definition: r.definition.clone().unwrap_or_default(),
                condition,
                required: r.required,
            });
        }

        // Routing.
        let mut routing = None;
        if let Some(rt) = &raw.routing {
            let rt = rt.get_ref();
            let on_stage = self.stage(&rt.on_stage);
            self.duplicates("territory", rt.territory.iter().map(|t| &t.get_ref().name));
            let mut territories = Vec::new();
            for t in &rt.territory {
                let t = t.get_ref();
                if t.pool.get_ref().is_empty() {
                    self.d.error(
                        "bad-value",
                        t.pool.span(),
                        format!("territory `{}` has an empty pool", t.name.get_ref()),
                        Some("list the owners who share this territory".into()),
                    );
                }
                if let Some(condition) = self.condition(&t.when, &scope_fit) {
                    territories.push(Territory {
                        name: t.name.get_ref().clone(),
                        condition,
                        pool: t.pool.get_ref().clone(),
                    });
                }
            }
            if let Some(on_stage) = on_stage {
                routing = Some(Routing {
                    on_stage,
                    account_owner_first: rt.account_owner_first,
                    owner_attr: rt.owner_attr.clone().unwrap_or_else(|| "owner".into()),
                    territories,
                    default_pool: rt.default_pool.clone(),
                });
            }
        }

        let initial_stage = initial_stage?;

        // The stage graph: reachable from the initial stage, and no dead ends.
        let seen = reach(n, usize::from(initial_stage), allows);
        for (i, s) in stages.iter().enumerate() {
            let name_span = raw.stage[i].get_ref().name.span();
            if !seen[i] {
                self.d.error(
                    "unreachable-stage",
                    name_span.clone(),
                    format!(
                        "stage `{}` cannot be reached from the initial stage `{}`",
                        s.name,
                        stages[usize::from(initial_stage)].name
                    ),
                    Some(format!(
                        "list `{}` in the `next` of a stage that leads to it",
                        s.name
                    )),
                );
            }
            if s.kind != StageKind::Terminal && !(0..n).any(|t| t != i && allows(i, t)) {
                self.d.error(
                    "dead-end",
                    name_span,
                    format!("stage `{}` is not terminal but has no way out", s.name),
                    Some("add a `next` list (a recycle path, at least), or mark it `kind = \"terminal\"`".into()),
                );
            }
        }

        // Rule semantics that need the whole model.
        let coupling = Coupling {
            status_to_stage,
            stage_to_status,
        };
        for (ri, rule) in rules.iter().enumerate() {
            let raw_rule = raw
                .rule
                .iter()
                .find(|r| r.get_ref().name.get_ref() == &rule.name)
                .map(|r| r.get_ref());
            let Some(raw_rule) = raw_rule else { continue };
            let known_from: Vec<StageId> = if !rule.action.only_from.is_empty() {
                rule.action.only_from.clone()
            } else {
                match &rule.trigger {
                    Trigger::StageEntered(s) => s.clone(),
                    Trigger::Timer {
                        in_stage: Some(s), ..
                    } => vec![*s],
                    _ => Vec::new(),
                }
            };
            let target = rule.action.set_stage.or_else(|| {
                rule.action
                    .set_status
                    .and_then(|x| coupling.status_to_stage[usize::from(x)])
            });
            if let (Some(st), Some(x)) = (rule.action.set_stage, rule.action.set_status) {
                if let Some(t) = coupling.status_to_stage[usize::from(x)] {
                    if t != st {
                        let sp = raw_rule
                            .set_status
                            .as_ref()
                            .map_or(rule.span.clone(), |s| s.span());
                        self.d.error(
                            "coupling-conflict",
                            sp,
                            format!(
                                "rule `{}` sets stage `{}` and status `{}`, but status `{}` moves the person to `{}`",
                                rule.name, stages[usize::from(st)].name, statuses[usize::from(x)].name, statuses[usize::from(x)].name, stages[usize::from(t)].name
                            ),
                            Some("stage and status logic disagree: pick a status that couples to this stage".into()),
                        );
                    }
                }
            }
            if let Some(t) = target {
                for &f in &known_from {
                    if f != t && !allows(usize::from(f), usize::from(t)) {
                        let sp = raw_rule
                            .set_stage
                            .as_ref()
                            .or(raw_rule.set_status.as_ref())
                            .map_or(rule.span.clone(), |s| s.span());
                        let via = if rule.action.set_stage.is_some() {
                            String::new()
                        } else {
                            format!(
                                " (through the coupling of status `{}`)",
                                statuses[usize::from(rule.action.set_status.unwrap_or_default())]
                                    .name
                            )
                        };
                        self.d.error(
                            if rule.action.set_stage.is_some() { "transition-not-allowed" } else { "coupling-unreachable" },
                            sp,
                            format!(
                                "rule `{}` moves people from `{}` to `{}`{via}, which cannot follow `{}`",
                                rule.name, stages[usize::from(f)].name, stages[usize::from(t)].name, stages[usize::from(f)].name
                            ),
                            Some(format!("add `{}` to the `next` of stage `{}`, or change the rule", stages[usize::from(t)].name, stages[usize::from(f)].name)),
                        );
                    }
                }
            }
            if let Some(x) = rule.action.set_status {
                if !statuses[usize::from(x)]
                    .set_by
                    .contains(&Setter::Automation)
                {
                    let sp = raw_rule
                        .set_status
                        .as_ref()
                        .map_or(rule.span.clone(), |s| s.span());
                    self.d.error(
                        "status-not-automatic",
                        sp,
                        format!(
                            "rule `{}` sets status `{}`, which only sales may set",
                            rule.name,
                            statuses[usize::from(x)].name
                        ),
                        Some(
                            "add \"automation\" to the status's `set_by`, or let sales set it"
                                .into(),
                        ),
                    );
                }
            }
            let _ = ri;
        }

        // Timers on stages that can never be entered; statuses that can never be set.
        for (ri, span) in &timer_rules {
            if let Trigger::Timer {
                in_stage: Some(s), ..
            } = rules[*ri].trigger
            {
                if !seen[usize::from(s)] {
                    self.d.error(
                        "timer-never-entered",
                        span.clone(),
                        format!(
                            "timer rule `{}` waits in stage `{}`, which can never be entered",
                            rules[*ri].name,
                            stages[usize::from(s)].name
                        ),
                        Some(format!(
                            "make `{}` reachable, or remove the timer",
                            stages[usize::from(s)].name
                        )),
                    );
                }
            }
        }
        let mut settable = vec![false; statuses.len()];
        if let Some(i) = initial_status {
            settable[usize::from(i)] = true;
        }
        for (i, s) in statuses.iter().enumerate() {
            if s.set_by.contains(&Setter::Sales) {
                settable[i] = true;
            }
        }
        for (i, x) in coupling.stage_to_status.iter().enumerate() {
            if let (Some(x), true) = (x, seen[i]) {
                settable[usize::from(*x)] = true;
            }
        }
        for r in &rules {
            if let Some(x) = r.action.set_status {
                settable[usize::from(x)] = true;
            }
        }
        for k in &outcomes {
            for o in [&k.created, &k.won, &k.lost].into_iter().flatten() {
                if let Some(x) = o.status {
                    settable[usize::from(x)] = true;
                }
            }
        }
        for r in &raw.rule {
            let r = r.get_ref();
            if let (Some(s), Some(RawOn::Timer)) = (&r.in_status, Some(*r.on.get_ref())) {
                if let Some(x) = self.status_names.iter().position(|n| n == s.get_ref()) {
                    if !settable[x] {
                        self.d.error(
                            "timer-never-entered",
                            s.span(),
                            format!("timer rule `{}` waits in status `{}`, which nothing can ever set", r.name.get_ref(), s.get_ref()),
                            Some("let sales set it (`set_by`), or set it from a rule, an outcome or a stage".into()),
                        );
                    }
                }
            }
        }

        // Conflicts: two rules that can fire on the same event with different outcomes and
        // the same priority.
        for i in 0..rules.len() {
            for j in 0..i {
                let (a, b) = (&rules[j], &rules[i]);
                if a.priority != b.priority || a.action == b.action {
                    continue;
                }
                if !triggers_overlap(&a.trigger, &b.trigger)
                    || !lists_overlap(&a.action.only_from, &b.action.only_from)
                    || !lists_overlap(&a.journeys, &b.journeys)
                {
                    continue;
                }
                let same_effect = (a.action.set_stage.is_none()
                    || b.action.set_stage.is_none()
                    || a.action.set_stage == b.action.set_stage)
                    && (a.action.set_status.is_none()
                        || b.action.set_status.is_none()
                        || a.action.set_status == b.action.set_status);
                if same_effect {
                    continue;
                }
                let line_a = self.line_of(&infos[j].line_span);
                self.d.error(
                    "rule-conflict",
                    infos[i].trigger_span.clone(),
                    format!(
                        "rules `{}` and `{}` can fire on the same event with different outcomes and the same priority ({})",
                        a.name, b.name, a.priority
                    ),
                    Some(format!(
                        "give one of them a higher `priority` (rule `{}` is on line {line_a}), or narrow their triggers or `only_from` so they cannot overlap",
                        a.name
                    )),
                );
            }
        }

        // Opportunity outcomes act as rules of priority 0: a rule of the same priority on the
        // same opportunity event must agree with them.
        for (i, r) in rules.iter().enumerate() {
            let Trigger::Opportunity { kinds, state } = &r.trigger else {
                continue;
            };
            if r.priority != 0 {
                continue;
            }
            let all = OpportunityKind::ALL.to_vec();
            let kinds = if kinds.is_empty() { &all } else { kinds };
            for &kind in kinds {
                let Some(o) = outcomes[kind as usize].get(*state) else {
                    continue;
                };
                let differs = |a: Option<u16>, b: Option<u16>| a.is_some() && b.is_some() && a != b;
                if differs(r.action.set_stage, o.stage) || differs(r.action.set_status, o.status) {
                    self.d.error(
                        "rule-conflict",
                        infos[i].trigger_span.clone(),
                        format!(
                            "rule `{}` and the `{}` outcome of {} opportunities fire on the same event with different outcomes and the same priority (0)",
                            r.name,
                            state.as_str(),
                            kind.as_str().replace('_', " ")
                        ),
                        Some(format!(
                            "give the rule a `priority` above 0 to override the outcome, or change `[outcome.{}]`",
                            kind.as_str()
                        )),
                    );
                }
            }
        }

        let mut by_trigger: [Vec<u32>; 7] = Default::default();
        let mut order: Vec<usize> = (0..rules.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(rules[i].priority), i));
        for i in order {
            by_trigger[rules[i].trigger.kind() as usize].push(i as u32);
        }

        Some(Model {
            name: header.name,
            description: header.description.unwrap_or_default(),
            stages,
            initial_stage,
            statuses,
            initial_status,
            source: self.text.to_string(),
            any_to_any,
            rules,
            coupling,
            scoring,
            outcomes,
            calendar,
            fields,
            account_stages,
            initial_account_stage,
            account_rules,
            journeys,
            roles,
            routing,
            matching,
            warnings: Vec::new(),
            allowed,
            by_trigger,
        })
    }

    fn matching(&mut self, m: &RawMatching) -> MatchPolicy {
        let defaults = MatchPolicy::enabled();
        let mut p = MatchPolicy {
            enabled: m.enabled.unwrap_or(true),
            extra_free_mail: m
                .free_mail
                .iter()
                .map(|d| d.trim().to_lowercase())
                .collect(),
            dedup: DedupRules {
                merge_duplicates: m.merge_duplicates.unwrap_or(true),
                ignore_plus_addressing: m
                    .ignore_plus_addressing
                    .unwrap_or(defaults.dedup.ignore_plus_addressing),
                ignore_gmail_dots: m
                    .ignore_gmail_dots
                    .unwrap_or(defaults.dedup.ignore_gmail_dots),
            },
            ..defaults
        };
        if let Some(c) = &m.min_confidence {
            let v = *c.get_ref();
            if (0.0..=1.0).contains(&v) {
                p.min_confidence = v;
            } else {
                self.d.error(
                    "bad-value",
                    c.span(),
                    "`min_confidence` must be between 0 and 1",
                    Some("e.g. `min_confidence = 0.85`: exact names score 0.92 to 0.95, domains 0.9 to 0.99".into()),
                );
            }
        }
        if let Some(t) = &m.tie_break {
            match TieBreak::parse(t.get_ref()) {
                Some(rule) => p.tie_break = rule,
                None => self.d.error(
                    "bad-value",
                    t.span(),
                    format!("unknown tie-break rule `{}`", t.get_ref()),
                    Some("use `most_people`, `oldest` or `largest_employees`".into()),
                ),
            }
        }
        if let Some(on) = &m.match_on {
            p.by_domain = false;
            p.by_company = false;
            for what in on.get_ref() {
                match what.get_ref().as_str() {
                    "domain" => p.by_domain = true,
                    "company" => p.by_company = true,
                    other => self.d.error(
                        "bad-value",
                        what.span(),
                        format!("unknown match key `{other}`"),
                        Some("use `\"domain\"` and/or `\"company\"`".into()),
                    ),
                }
            }
            if p.enabled && on.get_ref().is_empty() {
                self.d.error(
                    "bad-value",
                    on.span(),
                    "matching is enabled but `match_on` is empty",
                    Some("list `\"domain\"` and/or `\"company\"`, or set `enabled = false`".into()),
                );
            }
        }
        p
    }

    fn calendar(&mut self, c: &RawCalendar) -> Calendar {
        let mut cal = Calendar::default();
        if let Some(tz) = &c.timezone {
            match cal.set_timezone(tz.get_ref()) {
                true => {}
                false => self.d.error(
                    "bad-value",
                    tz.span(),
                    format!("unknown timezone `{}`", tz.get_ref()),
                    Some("use `UTC`, an IANA zone such as `America/New_York`, or a fixed offset such as `+02:00`".into()),
                ),
            }
        }
        if let Some(w) = &c.workdays {
            cal.workdays = [false; 7];
            for day in w.get_ref() {
                match Calendar::weekday_index(day.get_ref()) {
                    Some(i) => cal.workdays[i] = true,
                    None => self.d.error(
                        "bad-value",
                        day.span(),
                        format!("unknown weekday `{}`", day.get_ref()),
                        Some("use mon, tue, wed, thu, fri, sat, sun".into()),
                    ),
                }
            }
            if w.get_ref().is_empty() {
                self.d.error(
                    "bad-value",
                    w.span(),
                    "the calendar has no working days",
                    Some("business-time timers would never run out: list at least one day".into()),
                );
            }
        }
        if let Some(h) = &c.hours {
            let parsed = h
                .get_ref()
                .split_once('-')
                .and_then(|(a, b)| Some((Calendar::parse_time(a)?, Calendar::parse_time(b)?)));
            match parsed {
                Some((a, b)) if b > a => {
                    cal.start_minute = a;
                    cal.end_minute = b;
                }
                _ => self.d.error(
                    "bad-value",
                    h.span(),
                    format!("bad working hours `{}`", h.get_ref()),
                    Some("write them as `\"09:00-17:00\"`, the end after the start".into()),
                ),
            }
        }
        for hd in &c.holidays {
            match chrono::NaiveDate::parse_from_str(hd.get_ref(), "%Y-%m-%d") {
                Ok(date) => cal.holidays.push(date),
                Err(_) => self.d.error(
                    "bad-value",
                    hd.span(),
                    format!("bad holiday date `{}`", hd.get_ref()),
                    Some("write dates as `\"2026-12-25\"`".into()),
                ),
            }
        }
        cal.holidays.sort();
        cal.holidays.dedup();
        cal
    }

    fn rule(
        &mut self,
        r: &RawRule,
        r_span: Span,
        scope: &Scope<'_>,
        thresholds: &[(String, f64)],
        journey_names: &[String],
    ) -> Option<(Rule, RuleInfo)> {
        let name = r.name.get_ref();
        let on = *r.on.get_ref();
        let mut ok = true;
        // Keys that belong to other triggers are mistakes: they would be silently ignored.
        let present: [(&str, Option<Span>, bool); 11] = [
            (
                "activity",
                r.activity.as_ref().map(|x| x.span()),
                on == RawOn::Activity,
            ),
            (
                "status",
                r.status.as_ref().map(|x| x.span()),
                on == RawOn::Status,
            ),
            (
                "stage",
                r.stage.as_ref().map(|x| x.span()),
                on == RawOn::Stage,
            ),
            (
                "opportunity",
                r.opportunity.as_ref().map(|x| x.span()),
                on == RawOn::Opportunity,
            ),
            (
                "opportunity_kinds",
                r.opportunity_kinds.as_ref().map(|x| x.span()),
                on == RawOn::Opportunity,
            ),
            (
                "score",
                r.score.as_ref().map(|x| x.span()),
                on == RawOn::Score,
            ),
            (
                "crosses",
                r.crosses.as_ref().map(|x| x.span()),
                on == RawOn::Score,
            ),
            (
                "timer",
                r.timer.as_ref().map(|x| x.span()),
                on == RawOn::Timer,
            ),
            (
                "in_stage",
                r.in_stage.as_ref().map(|x| x.span()),
                on == RawOn::Timer,
            ),
            (
                "in_status",
                r.in_status.as_ref().map(|x| x.span()),
                on == RawOn::Timer,
            ),
            (
                "after",
                r.after.as_ref().map(|x| x.span()),
                on == RawOn::Timer,
            ),
        ];
        for (key, span, fits) in present {
            if let (Some(span), false) = (span, fits) {
                self.d.error(
                    "misplaced-key",
                    span,
                    format!(
                        "`{key}` does not apply to a rule with `on = \"{}\"`",
                        on_name(on)
                    ),
                    Some("remove it, or change `on`".into()),
                );
                ok = false;
            }
        }
        let missing = |c: &mut Self, key: &str| {
            c.d.error(
                "missing-key",
                r.on.span(),
                format!(
                    "rule `{name}` with `on = \"{}\"` needs `{key}`",
                    on_name(on)
                ),
                None,
            );
        };
        let trigger = match on {
            RawOn::PersonCreated => Trigger::PersonCreated,
            RawOn::Activity => Trigger::Activity {
                kinds: r
                    .activity
                    .as_ref()
                    .map(|a| a.get_ref().clone())
                    .unwrap_or_default(),
            },
            RawOn::Status => Trigger::StatusSet(
                r.status
                    .as_ref()
                    .map(|l| l.get_ref().iter().filter_map(|s| self.status(s)).collect())
                    .unwrap_or_default(),
            ),
            RawOn::Stage => Trigger::StageEntered(
                r.stage
                    .as_ref()
                    .map(|l| l.get_ref().iter().filter_map(|s| self.stage(s)).collect())
                    .unwrap_or_default(),
            ),
            RawOn::Opportunity => {
                let Some(state) = &r.opportunity else {
                    missing(self, "opportunity = \"created\" | \"won\" | \"lost\"");
                    return None;
                };
                Trigger::Opportunity {
                    kinds: r
                        .opportunity_kinds
                        .as_ref()
                        .map(|k| k.get_ref().iter().map(|k| opp_kind(*k)).collect())
                        .unwrap_or_default(),
                    state: match state.get_ref() {
                        RawOppState::Created => OppTrigger::Created,
                        RawOppState::Won => OppTrigger::Won,
                        RawOppState::Lost => OppTrigger::Lost,
                    },
                }
            }
            RawOn::Score => {
                let (Some(score), Some(crosses)) = (&r.score, &r.crosses) else {
                    missing(
                        self,
                        "score = \"fit\" | \"engagement\" and crosses = <number or threshold name>",
                    );
                    return None;
                };
                let threshold = match crosses.get_ref() {
                    NumberOrName::Number(x) => *x,
                    NumberOrName::Name(t) => match thresholds.iter().find(|(k, _)| k == t) {
                        Some((_, v)) => *v,
                        None => {
                            let hint = did_you_mean(t, thresholds.iter().map(|(k, _)| k.as_str()))
                                .map(|s| format!("did you mean `{s}`?"))
                                .unwrap_or_else(|| "declare it under [score.thresholds]".into());
                            self.d.error(
                                "unknown-name",
                                crosses.span(),
                                format!("unknown threshold `{t}`"),
                                Some(hint),
                            );
                            return None;
                        }
                    },
                };
                Trigger::ScoreCrossed {
                    score: match score.get_ref() {
                        RawScoreRef::Fit => ScoreRef::Fit,
                        RawScoreRef::Engagement => ScoreRef::Engagement,
                    },
                    threshold,
                    upward: r.direction != Some(RawDirection::Down),
                }
            }
            RawOn::Timer => {
                let Some(after) = &r.after else {
                    missing(
                        self,
                        "after = \"<n> hours|days|business_hours|business_days\"",
                    );
                    return None;
                };
                let Some(duration) = Duration::parse(after.get_ref()) else {
                    self.d.error(
                        "bad-value",
                        after.span(),
                        format!("cannot read the duration `{}`", after.get_ref()),
                        Some("write `\"3 business_days\"`, `\"90 days\"`, `\"4 business_hours\"` or `\"12 hours\"`".into()),
                    );
                    return None;
                };
                if r.in_stage.is_none() && r.in_status.is_none() {
                    missing(self, "in_stage or in_status");
                    return None;
                }
                Trigger::Timer {
                    in_stage: r.in_stage.as_ref().and_then(|s| self.stage(s)),
                    in_status: r.in_status.as_ref().and_then(|s| self.status(s)),
                    after: duration,
                    kind: match r.timer.as_ref().map(|t| *t.get_ref()) {
                        Some(RawTimer::NoActivity) => TimerKind::NoActivity,
                        _ => TimerKind::InStage,
                    },
                }
            }
        };
        let condition = match &r.when {
            Some(w) => {
                let c = self.condition(w, scope);
                if c.is_none() {
                    ok = false;
                }
                c
            }
            None => None,
        };
        let set_stage = r.set_stage.as_ref().and_then(|s| self.stage(s));
        let set_status = r.set_status.as_ref().and_then(|s| self.status(s));
        if r.set_stage.is_none() && r.set_status.is_none() {
            self.d.error(
                "rule-does-nothing",
                r.name.span(),
                format!("rule `{name}` sets neither a stage nor a status"),
                Some("add `set_stage = \"…\"` and/or `set_status = \"…\"`".into()),
            );
            ok = false;
        }
        if (r.set_stage.is_some() && set_stage.is_none())
            || (r.set_status.is_some() && set_status.is_none())
        {
            ok = false;
        }
        let only_from: Vec<StageId> = r.only_from.iter().filter_map(|s| self.stage(s)).collect();
        let journeys: Vec<JourneyId> = r
            .journey
            .iter()
            .filter_map(|j| self.resolve("journey", journey_names, j))
            .collect();
        if !ok {
            return None;
        }
        Some((
            Rule {
                name: name.clone(),
                description: r.description.clone().unwrap_or_default(),
                priority: r.priority,
                trigger,
                condition,
                action: Action {
                    set_stage,
                    set_status,
                    only_from,
                },
                journeys,
                span: r_span.clone(),
            },
            RuleInfo {
                line_span: r.name.span(),
                trigger_span: r.name.span(),
            },
        ))
    }
}

fn on_name(on: RawOn) -> &'static str {
    match on {
        RawOn::PersonCreated => "person_created",
        RawOn::Activity => "activity",
        RawOn::Status => "status",
        RawOn::Stage => "stage",
        RawOn::Opportunity => "opportunity",
        RawOn::Score => "score",
        RawOn::Timer => "timer",
    }
}

/// Stages reachable from `start`.
fn reach(n: usize, start: usize, allows: impl Fn(usize, usize) -> bool) -> Vec<bool> {
    let mut seen = vec![false; n];
    let mut stack = vec![start];
    if start < n {
        seen[start] = true;
    }
    while let Some(f) = stack.pop() {
        for (t, s) in seen.iter_mut().enumerate() {
            if !*s && allows(f, t) {
                *s = true;
                stack.push(t);
            }
        }
    }
    seen
}

/// Whether two lists used as filters (empty = any) can match the same value.
fn lists_overlap<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|x| b.contains(x))
}

/// Whether one event can fire both triggers.
fn triggers_overlap(a: &Trigger, b: &Trigger) -> bool {
    use Trigger::*;
    match (a, b) {
        (PersonCreated, PersonCreated) => true,
        (Activity { kinds: x }, Activity { kinds: y }) => lists_overlap(x, y),
        (StatusSet(x), StatusSet(y)) => lists_overlap(x, y),
        (StageEntered(x), StageEntered(y)) => lists_overlap(x, y),
        (
            Opportunity {
                kinds: k1,
                state: s1,
            },
            Opportunity {
                kinds: k2,
                state: s2,
            },
        ) => s1 == s2 && lists_overlap(k1, k2),
        (
            ScoreCrossed {
                score: s1,
                upward: u1,
                ..
            },
            ScoreCrossed {
                score: s2,
                upward: u2,
                ..
            },
        ) => s1 == s2 && u1 == u2,
        (
            Timer {
                in_stage: a1,
                in_status: b1,
                after: d1,
                kind: k1,
            },
            Timer {
                in_stage: a2,
                in_status: b2,
                after: d2,
                kind: k2,
            },
        ) => {
            let opt = |x: &Option<u16>, y: &Option<u16>| x.is_none() || y.is_none() || x == y;
            opt(a1, a2) && opt(b1, b2) && d1 == d2 && k1 == k2
        }
        _ => false,
    }
}
