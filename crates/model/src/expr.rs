//! CEL conditions: compiled once at load, type-checked against the model's declared fields,
//! evaluated against an [`EvalContext`] the engine fills. The `cel` crate stays behind this
//! module: nothing of its API leaks into the model's public types.
//!
//! The CEL namespace is fixed (see `docs/model.md`):
//! `person.<attr>`, `person.fit`, `person.engagement`, `person.stage`, `person.status`,
//! `account.<attr>`, `account.fit`, `account.engagement`, `account.type`, the account
//! aggregates (`account.engaged_people`, `account.mql_people`, `account.open_opportunities`,
//! `account.won_opportunities`, `account.intent_surges_30d`, `account.roles`),
//! `activity.kind`, `activity.<attr>`, `opportunity.kind`, `opportunity.amount`, and
//! `thresholds.<name>` from `[score.thresholds]`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use cel::objects::Key;
use cel::{Env, Program, Value};
use serde_json::Value as Json;
use waterfall_core::{Attrs, OpportunityKind};

use crate::fast::{Node, Stop, V as FastValue};
use crate::Span;

/// The type of a declared attribute (`[fields]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    String,
    /// A number (always a CEL `double` at run time).
    Number,
    /// true or false.
    Bool,
    /// A list of strings.
    List,
}

/// Account aggregates the engine computes from the account's people and activity.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AccountAggregates {
    /// People of the account with engagement above zero in the last 90 days.
    pub engaged_people: u32,
    /// People of the account currently in an MQL-or-later active stage.
    pub mql_people: u32,
    /// Open opportunities.
    pub open_opportunities: u32,
    /// Won opportunities, ever.
    pub won_opportunities: u32,
    /// Intent-surge activities on the account in the last 30 days.
    pub intent_surges_30d: u32,
    /// Buying-group roles present among the account's people (`decision_maker`…).
    pub roles: Vec<String>,
}

/// Everything a condition may read, filled by the engine; any part may be missing.
///
/// Missing parts and missing attributes make the expressions that read them false rather
/// than fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalContext<'a> {
    /// The person's attributes.
    pub person: Option<&'a Attrs>,
    /// The person's fit score.
    pub fit: f64,
    /// The person's engagement score (decayed to the event's instant).
    pub engagement: f64,
    /// The person's current stage name.
    pub stage: Option<&'a str>,
    /// The person's current status name.
    pub status: Option<&'a str>,
    /// The account's attributes.
    pub account: Option<&'a Attrs>,
    /// The account's fit score.
    pub account_fit: f64,
    /// The account's engagement score.
    pub account_engagement: f64,
    /// The account's type (`prospect`, `customer`, `partner`).
    pub account_type: Option<&'a str>,
    /// The account's aggregates.
    pub aggregates: Option<&'a AccountAggregates>,
    /// The activity's kind, when the event is an activity.
    pub activity_kind: Option<&'a str>,
    /// The activity's attributes.
    pub activity: Option<&'a Attrs>,
    /// The opportunity's kind, when the event is about an opportunity.
    pub opportunity_kind: Option<OpportunityKind>,
    /// The opportunity's amount.
    pub opportunity_amount: Option<f64>,
    /// Overrides of the model's thresholds, for what-if analysis; `None` (the usual case)
    /// uses the values from `[score.thresholds]`, which are compiled into each condition.
    pub thresholds: Option<&'a [(String, f64)]>,
}

/// A condition could not be evaluated (a value of an unexpected type at run time). Engines
/// treat it as false and may log it; missing attributes never cause it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("condition `{expression}` failed: {message}")]
pub struct EvalError {
    /// The condition's source text.
    pub expression: String,
    /// What went wrong.
    pub message: String,
}

/// The variables a condition may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Person,
    Account,
    Activity,
    Opportunity,
    Thresholds,
}

impl Root {
    const ALL: [Root; 5] = [
        Root::Person,
        Root::Account,
        Root::Activity,
        Root::Opportunity,
        Root::Thresholds,
    ];

    fn name(self) -> &'static str {
        match self {
            Root::Person => "person",
            Root::Account => "account",
            Root::Activity => "activity",
            Root::Opportunity => "opportunity",
            Root::Thresholds => "thresholds",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Root> {
        Root::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// Which fields of one root a condition reads (so evaluation builds only those).
#[derive(Debug, Clone, Default)]
struct RootUse {
    /// The whole root is used (e.g. `"x" in person`): build every field.
    whole: bool,
    fields: Vec<String>,
}

/// A compiled, checked CEL condition.
#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
    program: Arc<Program>,
    uses: Vec<(Root, RootUse)>,
    /// The model's thresholds this condition reads, compiled in.
    thresholds: Vec<(String, f64)>,
    /// The direct evaluator's form, when the condition has a shape it supports.
    fast: Option<Arc<Node>>,
    span: Span,
}

fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

impl Condition {
    /// The CEL text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the condition reads anything of `root` (`person`, `account`, …).
    pub fn reads_root(&self, root: &str) -> bool {
        self.uses.iter().any(|(r, _)| r.name() == root)
    }

    /// Whether the condition may read `root.field` (`account`, `engagement`): it names the
    /// field, or uses the whole root (`"engagement" in account`). Lets a caller skip
    /// computing what no condition reads.
    pub fn reads(&self, root: &str, field: &str) -> bool {
        self.uses
            .iter()
            .any(|(r, u)| r.name() == root && (u.whole || u.fields.iter().any(|f| f == field)))
    }

    /// Whether the condition runs on the direct evaluator (field reads, literals, `&&`, `||`,
    /// `!`, comparisons, `in`, `? :`) rather than always on the CEL interpreter.
    pub fn is_compiled(&self) -> bool {
        self.fast.is_some()
    }

    /// Where the expression is written in the model file.
    pub fn span(&self) -> Span {
        self.span.clone()
    }

    /// Evaluates the condition. Missing context parts or attributes make the expressions
    /// that read them false; a non-boolean result or a run-time type error is an
    /// [`EvalError`].
    pub fn eval(&self, ctx: &EvalContext<'_>) -> Result<bool, EvalError> {
        if let Some(fast) = &self.fast {
            match fast.eval(ctx, &self.thresholds) {
                Ok(FastValue::Bool(b)) => return Ok(b),
                Err(Stop::Missing) => return Ok(false),
                // A non-boolean result or anything unusual: the interpreter says what.
                Ok(_) | Err(Stop::Unsure) => {}
            }
        }
        self.eval_interpreted(ctx)
    }

    /// Evaluates the condition on the CEL interpreter only, skipping the direct evaluator
    /// [`eval`](Self::eval) tries first. Gives the same answer as `eval`, slower; it exists
    /// to compare the two (tests, benchmarks).
    pub fn eval_interpreted(&self, ctx: &EvalContext<'_>) -> Result<bool, EvalError> {
        let mut cel_ctx = cel::Context::with_env(Arc::clone(env()));
        for (root, used) in &self.uses {
            if let Some(v) = build_root(*root, used, ctx, &self.thresholds) {
                cel_ctx.add_variable_from_value(root.name(), v);
            }
        }
        match self.program.execute(&cel_ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(EvalError {
                expression: self.source.clone(),
                message: format!("result is {:?}, not a boolean", other.type_of()),
            }),
            Err(cel::ExecutionError::NoSuchKey(_))
            | Err(cel::ExecutionError::UndeclaredReference(_)) => Ok(false),
            Err(e) => Err(EvalError {
                expression: self.source.clone(),
                message: e.to_string(),
            }),
        }
    }
}

fn json_to_value(v: &Json) -> Option<Value> {
    Some(match v {
        Json::Null => return None,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Float(n.as_f64()?),
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(a) => Value::List(Arc::new(a.iter().filter_map(json_to_value).collect())),
        Json::Object(o) => {
            let map: HashMap<Key, Value> = o
                .iter()
                .filter_map(|(k, v)| Some((Key::from(k.clone()), json_to_value(v)?)))
                .collect();
            Value::from(map)
        }
    })
}

fn attrs_into(map: &mut HashMap<Key, Value>, attrs: Option<&Attrs>, used: &RootUse) {
    let Some(attrs) = attrs else { return };
    if used.whole {
        for (k, v) in attrs {
            if let Some(v) = json_to_value(v) {
                map.entry(Key::from(k.clone())).or_insert(v);
            }
        }
    } else {
        for f in &used.fields {
            if map.contains_key(&Key::from(f.clone())) {
                continue;
            }
            if let Some(v) = attrs.get(f).and_then(json_to_value) {
                map.insert(Key::from(f.clone()), v);
            }
        }
    }
}

fn build_root(
    root: Root,
    used: &RootUse,
    ctx: &EvalContext<'_>,
    thresholds: &[(String, f64)],
) -> Option<Value> {
    let mut map: HashMap<Key, Value> = HashMap::new();
    let wants = |name: &str| used.whole || used.fields.iter().any(|f| f == name);
    let put = |map: &mut HashMap<Key, Value>, name: &str, v: Option<Value>| {
        if let Some(v) = v {
            if wants(name) {
                map.insert(Key::from(name.to_string()), v);
            }
        }
    };
    let s = |x: Option<&str>| x.map(|x| Value::String(Arc::new(x.to_string())));
    let n = |x: u32| Some(Value::Float(f64::from(x)));
    match root {
        Root::Person => {
            put(&mut map, "fit", Some(Value::Float(ctx.fit)));
            put(&mut map, "engagement", Some(Value::Float(ctx.engagement)));
            put(&mut map, "stage", s(ctx.stage));
            put(&mut map, "status", s(ctx.status));
            attrs_into(&mut map, ctx.person, used);
        }
        Root::Account => {
            put(&mut map, "fit", Some(Value::Float(ctx.account_fit)));
            put(
                &mut map,
                "engagement",
                Some(Value::Float(ctx.account_engagement)),
            );
            put(&mut map, "type", s(ctx.account_type));
            if let Some(a) = ctx.aggregates {
                put(&mut map, "engaged_people", n(a.engaged_people));
                put(&mut map, "mql_people", n(a.mql_people));
                put(&mut map, "open_opportunities", n(a.open_opportunities));
                put(&mut map, "won_opportunities", n(a.won_opportunities));
                put(&mut map, "intent_surges_30d", n(a.intent_surges_30d));
                put(
                    &mut map,
                    "roles",
                    Some(Value::List(Arc::new(
                        a.roles
                            .iter()
                            .map(|r| Value::String(Arc::new(r.clone())))
                            .collect(),
                    ))),
                );
            }
            attrs_into(&mut map, ctx.account, used);
        }
        Root::Activity => {
            ctx.activity_kind?;
            put(&mut map, "kind", s(ctx.activity_kind));
            attrs_into(&mut map, ctx.activity, used);
        }
        Root::Opportunity => {
            let kind = ctx.opportunity_kind?;
            put(&mut map, "kind", s(Some(kind.as_str())));
            put(&mut map, "amount", ctx.opportunity_amount.map(Value::Float));
        }
        Root::Thresholds => {
            for (k, v) in thresholds {
                let v = ctx
                    .thresholds
                    .and_then(|o| o.iter().find(|(n, _)| n == k))
                    .map_or(*v, |(_, o)| *o);
                put(&mut map, k, Some(Value::Float(v)));
            }
        }
    }
    Some(Value::from(map))
}

// ---------------------------------------------------------------------------------------
// Checking

/// Types the checker infers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Int,
    Double,
    Str,
    List,
    Map,
    Null,
    Dyn,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Double => "number",
            Ty::Str => "string",
            Ty::List => "list",
            Ty::Map => "map",
            Ty::Null => "null",
            Ty::Dyn => "dyn",
        }
    }

    /// The name with its article (`a string`, `an int`).
    fn a(self) -> String {
        let n = self.name();
        if n.starts_with(['a', 'e', 'i', 'o', 'u']) {
            format!("an {n}")
        } else {
            format!("a {n}")
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Double)
    }

    fn from_field(t: FieldType) -> Ty {
        match t {
            FieldType::String => Ty::Str,
            FieldType::Number => Ty::Double,
            FieldType::Bool => Ty::Bool,
            FieldType::List => Ty::List,
        }
    }
}

/// What a condition may refer to, given where it is written.
pub(crate) struct Scope<'a> {
    /// The roots allowed here.
    pub roots: &'a [Root],
    pub person: &'a [(String, FieldType)],
    pub account: &'a [(String, FieldType)],
    pub activity: &'a [(String, FieldType)],
    pub thresholds: &'a [(String, f64)],
    pub stages: &'a [String],
    pub statuses: &'a [String],
    /// Where the roots list comes from, for the hint (`fit rules`).
    pub place: &'a str,
}

/// Roots for person rules and journeys.
pub(crate) const ALL_ROOTS: &[Root] = &[
    Root::Person,
    Root::Account,
    Root::Activity,
    Root::Opportunity,
    Root::Thresholds,
];
/// Roots for fit rules.
pub(crate) const FIT_ROOTS: &[Root] = &[Root::Person, Root::Account, Root::Thresholds];
/// Roots for account rules and account fit.
pub(crate) const ACCOUNT_ROOTS: &[Root] = &[Root::Account, Root::Thresholds];

/// A problem in a condition: message, span inside the expression (char offsets), hint.
pub(crate) struct CondProblem {
    pub code: &'static str,
    pub message: String,
    /// Character range inside the expression text, if known.
    pub chars: Option<(usize, usize)>,
    pub hint: Option<String>,
}

/// A built-in field and its type.
type Builtin = (&'static str, Ty);

const PERSON_BUILTINS: &[(&str, Ty)] = &[
    ("fit", Ty::Double),
    ("engagement", Ty::Double),
    ("stage", Ty::Str),
    ("status", Ty::Str),
];
const ACCOUNT_BUILTINS: &[(&str, Ty)] = &[
    ("fit", Ty::Double),
    ("engagement", Ty::Double),
    ("type", Ty::Str),
    ("engaged_people", Ty::Double),
    ("mql_people", Ty::Double),
    ("open_opportunities", Ty::Double),
    ("won_opportunities", Ty::Double),
    ("intent_surges_30d", Ty::Double),
    ("roles", Ty::List),
];
const ACTIVITY_BUILTINS: &[(&str, Ty)] = &[("kind", Ty::Str)];
const OPPORTUNITY_BUILTINS: &[(&str, Ty)] = &[("kind", Ty::Str), ("amount", Ty::Double)];

/// The built-in field names of a root (`person` → fit, engagement, stage, status).
pub(crate) fn builtin_names(root: &str) -> Vec<&'static str> {
    let list: &[(&str, Ty)] = match root {
        "person" => PERSON_BUILTINS,
        "account" => ACCOUNT_BUILTINS,
        "activity" => ACTIVITY_BUILTINS,
        _ => &[],
    };
    list.iter().map(|(n, _)| *n).collect()
}

/// The longest condition accepted, in bytes.
pub(crate) const MAX_CONDITION_BYTES: usize = 4096;
/// The most operators, brackets and dots a condition may use (bounds its nesting).
pub(crate) const MAX_CONDITION_OPERATORS: usize = 128;

/// Compiles and checks a condition. On success returns the condition; otherwise every
/// problem found in it.
pub(crate) fn compile(
    text: &str,
    span: Span,
    scope: &Scope<'_>,
) -> Result<Condition, Vec<CondProblem>> {
    // The parser and the evaluator recurse over the expression: bound its size so no model
    // file can overflow the stack, at load or at run time.
    let operators = text
        .chars()
        .filter(|c| "+-*/%!&|<>=?:([{,.".contains(*c))
        .count();
    if text.len() > MAX_CONDITION_BYTES || operators > MAX_CONDITION_OPERATORS {
        return Err(vec![CondProblem {
            code: "cel-too-complex",
            message: format!(
                "this condition is too large ({} bytes, {operators} operators; the limit is {MAX_CONDITION_BYTES} bytes and {MAX_CONDITION_OPERATORS} operators)",
                text.len()
            ),
            chars: None,
            hint: Some("split it into several rules, or move parts into fit rules and thresholds".into()),
        }]);
    }
    let program = match std::panic::catch_unwind(|| env().compile(text)) {
        Ok(Ok(p)) => p,
        Ok(Err(errs)) => {
            let problems = errs
                .errors
                .iter()
                .map(|e| {
                    let start = line_col_to_char(text, e.pos.0, e.pos.1);
                    CondProblem {
                        code: "cel-syntax",
                        message: format!("CEL syntax error: {}", e.msg),
                        chars: Some((start, start + 1)),
                        hint: Some("conditions are CEL expressions, e.g. `person.fit >= 40 && person.engagement >= 60`".into()),
                    }
                })
                .collect::<Vec<_>>();
            if problems.is_empty() {
                return Err(vec![CondProblem {
                    code: "cel-syntax",
                    message: "CEL syntax error".into(),
                    chars: None,
                    hint: None,
                }]);
            }
            return Err(problems);
        }
        Err(_) => {
            return Err(vec![CondProblem {
                code: "cel-syntax",
                message: "CEL syntax error: the expression could not be parsed".into(),
                chars: None,
                hint: None,
            }])
        }
    };
    let mut checker = Checker {
        scope,
        program: &program,
        bound: Vec::new(),
        problems: Vec::new(),
        uses: Vec::new(),
    };
    let ty = checker.check(program.expression());
    if !matches!(ty, Ty::Bool | Ty::Dyn) {
        let chars = checker.chars(program.expression().id);
        checker.problems.push(CondProblem {
            code: "cel-type",
            message: format!("a condition must be a bool, this is {}", ty.a()),
            chars,
            hint: Some("compare it with something, e.g. `>= 40` or `== \"CEO\"`".into()),
        });
    }
    if !checker.problems.is_empty() {
        return Err(checker.problems);
    }
    let uses = checker.uses;
    let thresholds = match uses.iter().find(|(r, _)| *r == Root::Thresholds) {
        Some((_, u)) => scope
            .thresholds
            .iter()
            .filter(|(n, _)| u.whole || u.fields.contains(n))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let fast = crate::fast::compile(program.expression()).map(Arc::new);
    Ok(Condition {
        source: text.to_string(),
        fast,
        program: Arc::new(program),
        uses,
        thresholds,
        span,
    })
}

/// Converts a 1-based (line, column) inside `text` into a 0-based char offset.
fn line_col_to_char(text: &str, line: isize, col: isize) -> usize {
    let mut offset = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i as isize + 1 == line {
            let c = (col.max(1) as usize - 1).min(l.chars().count());
            return offset + c;
        }
        offset += l.chars().count();
    }
    offset.saturating_sub(1)
}

struct Checker<'s, 'p> {
    scope: &'s Scope<'s>,
    program: &'p Program,
    bound: Vec<String>,
    problems: Vec<CondProblem>,
    uses: Vec<(Root, RootUse)>,
}

impl Checker<'_, '_> {
    fn chars(&self, id: u64) -> Option<(usize, usize)> {
        self.program
            .source_info()
            .offset_for(id)
            .map(|(a, b)| (a as usize, (b as usize).max(a as usize + 1)))
    }

    fn problem(&mut self, id: u64, code: &'static str, message: String, hint: Option<String>) {
        let chars = self.chars(id);
        self.problem_at(chars, code, message, hint);
    }

    /// The span of `root.field`: from the root's first character to the field's last.
    fn select_chars(&self, e: &IdedExpr) -> Option<(usize, usize)> {
        let Expr::Select(sel) = &e.expr else {
            return self.chars(e.id);
        };
        let (start, _) = self.chars(sel.operand.id)?;
        let (dot, _) = self.chars(e.id)?;
        Some((start.min(dot), dot + 1 + sel.field.chars().count()))
    }

    fn problem_at(
        &mut self,
        chars: Option<(usize, usize)>,
        code: &'static str,
        message: String,
        hint: Option<String>,
    ) {
        self.problems.push(CondProblem {
            code,
            message,
            chars,
            hint,
        });
    }

    fn use_root(&mut self, root: Root) -> &mut RootUse {
        if let Some(i) = self.uses.iter().position(|(r, _)| *r == root) {
            &mut self.uses[i].1
        } else {
            self.uses.push((root, RootUse::default()));
            &mut self.uses.last_mut().expect("just pushed").1
        }
    }

    /// A root variable (`person`), or a bound comprehension variable.
    fn ident(&mut self, id: u64, name: &str) -> Ty {
        if self.bound.iter().any(|b| b == name) {
            return Ty::Dyn;
        }
        match Root::parse(name) {
            Some(root) if self.scope.roots.contains(&root) => {
                self.use_root(root).whole = true;
                Ty::Map
            }
            Some(_) => {
                let allowed: Vec<_> = self.scope.roots.iter().map(|r| r.name()).collect();
                self.problem(
                    id,
                    "cel-unknown-field",
                    format!("`{name}` is not available in {}", self.scope.place),
                    Some(format!("available here: {}", allowed.join(", "))),
                );
                Ty::Dyn
            }
            None => {
                let names: Vec<&str> = self.scope.roots.iter().map(|r| r.name()).collect();
                let hint = match did_you_mean(name, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("the variables are {}", names.join(", ")),
                };
                self.problem(
                    id,
                    "cel-unknown-field",
                    format!("unknown variable `{name}`"),
                    Some(hint),
                );
                Ty::Dyn
            }
        }
    }

    /// `root.field`.
    fn field(&mut self, e: &IdedExpr, root: Root, field: &str) -> Ty {
        let (builtins, declared): (&[Builtin], &[(String, FieldType)]) = match root {
            Root::Person => (PERSON_BUILTINS, self.scope.person),
            Root::Account => (ACCOUNT_BUILTINS, self.scope.account),
            Root::Activity => (ACTIVITY_BUILTINS, self.scope.activity),
            Root::Opportunity => (OPPORTUNITY_BUILTINS, &[]),
            Root::Thresholds => (&[], &[]),
        };
        let found = builtins
            .iter()
            .find(|(n, _)| *n == field)
            .map(|(_, t)| *t)
            .or_else(|| {
                declared
                    .iter()
                    .find(|(n, _)| n == field)
                    .map(|(_, t)| Ty::from_field(*t))
            })
            .or_else(|| {
                (root == Root::Thresholds && self.scope.thresholds.iter().any(|(n, _)| n == field))
                    .then_some(Ty::Double)
            });
        match found {
            Some(t) => {
                let u = self.use_root(root);
                if !u.fields.iter().any(|f| f == field) {
                    u.fields.push(field.to_string());
                }
                t
            }
            None => {
                let candidates: Vec<&str> = builtins
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(declared.iter().map(|(n, _)| n.as_str()))
                    .chain(
                        self.scope
                            .thresholds
                            .iter()
                            .filter(|_| root == Root::Thresholds)
                            .map(|(n, _)| n.as_str()),
                    )
                    .collect();
                let hint = match did_you_mean(field, candidates.iter().copied()) {
                    Some(s) => format!("did you mean `{}.{s}`?", root.name()),
                    None => match root {
                        Root::Thresholds => "declare it under [score.thresholds]".to_string(),
                        Root::Opportunity => "opportunity has `kind` and `amount`".to_string(),
                        _ => format!(
                            "declare it under [fields.{}] with its type, e.g. `{field} = \"string\"`",
                            root.name()
                        ),
                    },
                };
                let chars = self.select_chars(e);
                self.problem_at(
                    chars,
                    "cel-unknown-field",
                    format!("unknown field `{}.{field}`", root.name()),
                    Some(hint),
                );
                Ty::Dyn
            }
        }
    }

    /// If `e` is `root.field` (not shadowed), which root and field.
    fn as_field<'e>(&self, e: &'e IdedExpr) -> Option<(Root, &'e str)> {
        if let Expr::Select(sel) = &e.expr {
            if let Expr::Ident(name) = &sel.operand.expr {
                if !self.bound.iter().any(|b| b == name) {
                    return Root::parse(name).map(|r| (r, sel.field.as_str()));
                }
            }
        }
        None
    }

    fn check(&mut self, e: &IdedExpr) -> Ty {
        match &e.expr {
            Expr::Unspecified => Ty::Dyn,
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Int(_) | LiteralValue::UInt(_) => Ty::Int,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::String(_) => Ty::Str,
                LiteralValue::Bytes(_) => Ty::Dyn,
                LiteralValue::Null => Ty::Null,
            },
            Expr::Ident(name) => self.ident(e.id, name),
            Expr::Select(sel) => {
                if let Some((root, field)) = self.as_field(e) {
                    if !self.scope.roots.contains(&root) {
                        return self.ident(sel.operand.id, root.name());
                    }
                    let t = self.field(e, root, field);
                    return if sel.test { Ty::Bool } else { t };
                }
                let t = self.check(&sel.operand);
                if !matches!(t, Ty::Map | Ty::Dyn) {
                    self.problem(
                        e.id,
                        "cel-type",
                        format!("a {} has no field `{}`", t.name(), sel.field),
                        None,
                    );
                }
                if sel.test {
                    Ty::Bool
                } else {
                    Ty::Dyn
                }
            }
            Expr::List(l) => {
                for el in &l.elements {
                    self.check(el);
                }
                Ty::List
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                        self.check(&me.key);
                        self.check(&me.value);
                    }
                }
                Ty::Map
            }
            Expr::Struct(s) => {
                self.problem(
                    e.id,
                    "cel-type",
                    format!("message types such as `{}` are not available", s.type_name),
                    None,
                );
                Ty::Dyn
            }
            Expr::Comprehension(c) => {
                self.check(&c.iter_range);
                self.check(&c.accu_init);
                let before = self.bound.len();
                self.bound.push(c.iter_var.clone());
                if let Some(v) = &c.iter_var2 {
                    self.bound.push(v.clone());
                }
                self.bound.push(c.accu_var.clone());
                self.check(&c.loop_cond);
                self.check(&c.loop_step);
                let t = self.check(&c.result);
                self.bound.truncate(before);
                t
            }
            Expr::Call(call) => self.call(e, call),
        }
    }

    fn call(&mut self, e: &IdedExpr, call: &cel::common::ast::CallExpr) -> Ty {
        use cel::common::ast::operators as op;
        let f = call.func_name.as_str();
        let target = call.target.as_ref().map(|t| self.check(t));
        let args: Vec<Ty> = call.args.iter().map(|a| self.check(a)).collect();
        let bad = |c: &mut Self, msg: String, hint: Option<String>| {
            c.problem(e.id, "cel-type", msg, hint);
            Ty::Dyn
        };
        match (f, args.as_slice()) {
            (op::LOGICAL_AND | op::LOGICAL_OR, [a, b]) => {
                for t in [a, b] {
                    if !matches!(t, Ty::Bool | Ty::Dyn) {
                        let word = if f == op::LOGICAL_AND { "&&" } else { "||" };
                        return bad(
                            self,
                            format!("`{word}` needs bools on both sides, found a {}", t.name()),
                            None,
                        );
                    }
                }
                Ty::Bool
            }
            (op::LOGICAL_NOT | op::NOT_STRICTLY_FALSE, [a]) => {
                if !matches!(a, Ty::Bool | Ty::Dyn) {
                    return bad(
                        self,
                        format!("`!` needs a bool, found a {}", a.name()),
                        None,
                    );
                }
                Ty::Bool
            }
            (op::EQUALS | op::NOT_EQUALS, [a, b]) => {
                if !compatible_eq(*a, *b) {
                    return bad(
                        self,
                        format!("cannot compare {} with {}", a.a(), b.a()),
                        Some("both sides of `==` must have the same type".into()),
                    );
                }
                self.check_name_literal(&call.args[0], &call.args[1]);
                self.check_name_literal(&call.args[1], &call.args[0]);
                Ty::Bool
            }
            (op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS, [a, b]) => {
                let ok = (a.numeric() && b.numeric())
                    || (*a == Ty::Str && *b == Ty::Str)
                    || (*a == Ty::Dyn && *b != Ty::Null && *b != Ty::Bool)
                    || (*b == Ty::Dyn && *a != Ty::Null && *a != Ty::Bool);
                if !ok {
                    let hint = if (a.numeric() && *b == Ty::Str) || (b.numeric() && *a == Ty::Str) {
                        Some("compare a number with a number: remove the quotes".to_string())
                    } else {
                        None
                    };
                    return bad(
                        self,
                        format!("cannot order {} against {}", a.a(), b.a()),
                        hint,
                    );
                }
                Ty::Bool
            }
            (op::ADD, [a, b]) => match (a, b) {
                (Ty::Dyn, t) | (t, Ty::Dyn) => {
                    if matches!(t, Ty::Bool | Ty::Null | Ty::Map) {
                        bad(self, format!("cannot add a {}", t.name()), None)
                    } else {
                        *t
                    }
                }
                (Ty::Str, Ty::Str) => Ty::Str,
                (Ty::List, Ty::List) => Ty::List,
                (x, y) if x.numeric() && y.numeric() => self.arith(e, *x, *y),
                _ => bad(
                    self,
                    format!("cannot add a {} and a {}", a.name(), b.name()),
                    None,
                ),
            },
            (op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO, [a, b]) => match (a, b) {
                (Ty::Dyn, t) | (t, Ty::Dyn) if t.numeric() || *t == Ty::Dyn => *t,
                (x, y) if x.numeric() && y.numeric() => self.arith(e, *x, *y),
                _ => bad(
                    self,
                    format!("arithmetic on a {} and a {}", a.name(), b.name()),
                    None,
                ),
            },
            (op::NEGATE, [a]) => {
                if !(a.numeric() || *a == Ty::Dyn) {
                    return bad(self, format!("cannot negate a {}", a.name()), None);
                }
                *a
            }
            (op::CONDITIONAL, [c, t, f2]) => {
                if !matches!(c, Ty::Bool | Ty::Dyn) {
                    return bad(
                        self,
                        format!(
                            "the condition of `? :` must be a bool, found a {}",
                            c.name()
                        ),
                        None,
                    );
                }
                if t == f2 {
                    *t
                } else {
                    Ty::Dyn
                }
            }
            (op::IN, [a, b]) => {
                if !matches!(b, Ty::List | Ty::Map | Ty::Dyn) {
                    return bad(
                        self,
                        format!(
                            "`in` needs a list or a map on the right, found a {}",
                            b.name()
                        ),
                        None,
                    );
                }
                let _ = a;
                Ty::Bool
            }
            (op::INDEX | op::OPT_INDEX, [_, _]) => Ty::Dyn,
            ("size", _) => Ty::Int,
            ("contains" | "startsWith" | "endsWith" | "matches", [arg]) => {
                if let Some(t) = target {
                    if !matches!(t, Ty::Str | Ty::Dyn) {
                        return bad(
                            self,
                            format!("`{f}` works on strings, found a {}", t.name()),
                            None,
                        );
                    }
                }
                if !matches!(arg, Ty::Str | Ty::Dyn) {
                    return bad(
                        self,
                        format!("`{f}` needs a string argument, found a {}", arg.name()),
                        None,
                    );
                }
                Ty::Bool
            }
            ("int" | "uint", [_]) => Ty::Int,
            ("double", [_]) => Ty::Double,
            ("string", [_]) => Ty::Str,
            ("max" | "min", _) => Ty::Dyn,
            ("has", _) => Ty::Bool,
            _ => {
                let known = [
                    "size",
                    "contains",
                    "startsWith",
                    "endsWith",
                    "matches",
                    "int",
                    "uint",
                    "double",
                    "string",
                    "has",
                    "exists",
                    "all",
                    "exists_one",
                    "map",
                    "filter",
                ];
                let hint = match did_you_mean(f, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known functions: {}", known.join(", ")),
                };
                self.problem(
                    e.id,
                    "cel-type",
                    format!("unknown function `{f}` with {} argument(s)", args.len()),
                    Some(hint),
                );
                Ty::Dyn
            }
        }
    }

    fn arith(&mut self, e: &IdedExpr, a: Ty, b: Ty) -> Ty {
        if a != b {
            self.problem(
                e.id,
                "cel-type",
                "arithmetic mixes an int and a number".into(),
                Some("numbers are doubles at run time: write integer literals as `10.0`".into()),
            );
            return Ty::Dyn;
        }
        a
    }

    /// `person.stage == "SQLL"`: the literal must name a stage (same for status, kinds).
    fn check_name_literal(&mut self, field: &IdedExpr, lit: &IdedExpr) {
        let Some((root, name)) = self.as_field(field) else {
            return;
        };
        let Expr::Literal(LiteralValue::String(s)) = &lit.expr else {
            return;
        };
        let value: &str = s.as_ref();
        let (what, names): (&str, Vec<&str>) = match (root, name) {
            (Root::Person, "stage") => (
                "stage",
                self.scope.stages.iter().map(|s| s.as_str()).collect(),
            ),
            (Root::Person, "status") => (
                "status",
                self.scope.statuses.iter().map(|s| s.as_str()).collect(),
            ),
            (Root::Opportunity, "kind") => (
                "opportunity kind",
                OpportunityKind::ALL.iter().map(|k| k.as_str()).collect(),
            ),
            _ => return,
        };
        if !names.contains(&value) {
            let hint = did_you_mean(value, names.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(format!("known: {}", names.join(", "))));
            self.problem(
                lit.id,
                if what == "stage" {
                    "unknown-stage"
                } else if what == "status" {
                    "unknown-status"
                } else {
                    "cel-type"
                },
                format!("unknown {what} `{value}` in condition"),
                hint,
            );
        }
    }
}

fn compatible_eq(a: Ty, b: Ty) -> bool {
    a == b
        || a == Ty::Dyn
        || b == Ty::Dyn
        || a == Ty::Null
        || b == Ty::Null
        || (a.numeric() && b.numeric())
}

/// The closest candidate to `word`, if close enough to be a typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (levenshtein(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    // Optimal string alignment distance: edits plus adjacent transpositions (`titel`).
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}
