//! A direct evaluator for the common shape of conditions: field reads, literals, `&&`, `||`,
//! `!`, comparisons, `in` and `? :`, walked over the engine's [`EvalContext`] without building
//! a `cel::Context` or any CEL value.
//!
//! It answers only when it is sure to give the interpreter's answer; otherwise (a construct
//! it does not compile, a run-time type error, a value it does not model) it says so, and
//! [`Condition::eval`](crate::Condition::eval) asks the interpreter. The rules it mirrors are
//! those of `cel` 0.15's `Value::resolve_val`:
//!
//! - a field missing from its map is a `NoSuchKey` error, a root variable the context lacks
//!   an `UndeclaredReference`; either makes the whole condition false (see
//!   `Condition::eval`), so both are [`Stop::Missing`] here;
//! - `a || b`: `true` if `a` is; else `b` is evaluated and its error propagates; `b`'s `true`
//!   absorbs an error of `a`, otherwise `a`'s error wins (`&&` alike with `false`);
//! - `==` and `!=` evaluate both sides (left error first) and compare by value, numbers across
//!   int, uint and double; values of different kinds are unequal;
//! - `x in list` is `==` against each element.

use std::cmp::Ordering;

use cel::common::ast::{operators as op, Expr, IdedExpr, LiteralValue};
use serde_json::Value as Json;

use crate::expr::{EvalContext, Root};

/// Why evaluation stopped without a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A missing field or root: the interpreter's `NoSuchKey` / `UndeclaredReference`.
    Missing,
    /// Something this evaluator does not model: ask the interpreter.
    Unsure,
}

/// A literal, as CEL types it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Const {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(Box<str>),
}

impl Const {
    fn val(&self) -> V<'_> {
        match self {
            Const::Null => V::Null,
            Const::Bool(b) => V::Bool(*b),
            Const::Int(i) => V::Int(*i),
            Const::UInt(u) => V::UInt(*u),
            Const::Double(d) => V::Double(*d),
            Const::Str(s) => V::Str(s),
        }
    }
}

/// A field of one root, resolved at compile time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    PersonFit,
    PersonEngagement,
    PersonStage,
    PersonStatus,
    PersonAttr(Box<str>),
    AccountFit,
    AccountEngagement,
    AccountType,
    Aggregate(Aggregate),
    AccountAttr(Box<str>),
    ActivityKind,
    ActivityAttr(Box<str>),
    OpportunityKind,
    OpportunityAmount,
    /// A field nothing provides: always missing.
    Absent,
    Threshold(Box<str>),
}

/// An account aggregate (its name also reads the account's attributes when the context has
/// no aggregates, as the interpreter's variable map does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Aggregate {
    EngagedPeople,
    MqlPeople,
    OpenOpportunities,
    WonOpportunities,
    IntentSurges30d,
    Roles,
}

impl Aggregate {
    fn parse(name: &str) -> Option<Aggregate> {
        Some(match name {
            "engaged_people" => Aggregate::EngagedPeople,
            "mql_people" => Aggregate::MqlPeople,
            "open_opportunities" => Aggregate::OpenOpportunities,
            "won_opportunities" => Aggregate::WonOpportunities,
            "intent_surges_30d" => Aggregate::IntentSurges30d,
            "roles" => Aggregate::Roles,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Aggregate::EngagedPeople => "engaged_people",
            Aggregate::MqlPeople => "mql_people",
            Aggregate::OpenOpportunities => "open_opportunities",
            Aggregate::WonOpportunities => "won_opportunities",
            Aggregate::IntentSurges30d => "intent_surges_30d",
            Aggregate::Roles => "roles",
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Lit(Const),
    /// A list literal of literals.
    List(Vec<Const>),
    Field(Field),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Eq(Box<Node>, Box<Node>),
    Ne(Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    In(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
}

/// Compiles a checked expression, or `None` when it uses anything this evaluator does not
/// support (the condition then always runs on the interpreter).
pub(crate) fn compile(e: &IdedExpr) -> Option<Node> {
    Some(match &e.expr {
        Expr::Literal(l) => Node::Lit(literal(l)?),
        Expr::List(l) => {
            if !l.optional_indices.is_empty() {
                return None;
            }
            let items = l
                .elements
                .iter()
                .map(|el| match &el.expr {
                    Expr::Literal(l) => literal(l),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Node::List(items)
        }
        Expr::Select(sel) => {
            if sel.test {
                return None;
            }
            let Expr::Ident(root) = &sel.operand.expr else {
                return None;
            };
            Node::Field(field(Root::parse(root)?, &sel.field))
        }
        Expr::Call(call) => {
            if call.target.is_some() {
                return None;
            }
            let arg = |i: usize| compile(&call.args[i]).map(Box::new);
            match (call.func_name.as_str(), call.args.len()) {
                (op::LOGICAL_AND, 2) => Node::And(arg(0)?, arg(1)?),
                (op::LOGICAL_OR, 2) => Node::Or(arg(0)?, arg(1)?),
                (op::LOGICAL_NOT, 1) => Node::Not(arg(0)?),
                (op::EQUALS, 2) => Node::Eq(arg(0)?, arg(1)?),
                (op::NOT_EQUALS, 2) => Node::Ne(arg(0)?, arg(1)?),
                (op::LESS, 2) => Node::Cmp(Cmp::Lt, arg(0)?, arg(1)?),
                (op::LESS_EQUALS, 2) => Node::Cmp(Cmp::Le, arg(0)?, arg(1)?),
                (op::GREATER, 2) => Node::Cmp(Cmp::Gt, arg(0)?, arg(1)?),
                (op::GREATER_EQUALS, 2) => Node::Cmp(Cmp::Ge, arg(0)?, arg(1)?),
                (op::IN, 2) => Node::In(arg(0)?, arg(1)?),
                (op::CONDITIONAL, 3) => Node::Cond(arg(0)?, arg(1)?, arg(2)?),
                _ => return None,
            }
        }
        Expr::Ident(_)
        | Expr::Map(_)
        | Expr::Struct(_)
        | Expr::Comprehension(_)
        | Expr::Unspecified => return None,
    })
}

fn literal(l: &LiteralValue) -> Option<Const> {
    Some(match l {
        LiteralValue::Boolean(b) => Const::Bool(*b.inner()),
        LiteralValue::Int(i) => Const::Int(*i.inner()),
        LiteralValue::UInt(u) => Const::UInt(*u.inner()),
        LiteralValue::Double(d) => Const::Double(*d.inner()),
        LiteralValue::String(s) => Const::Str(s.inner().into()),
        LiteralValue::Null => Const::Null,
        LiteralValue::Bytes(_) => return None,
    })
}

fn field(root: Root, name: &str) -> Field {
    match (root, name) {
        (Root::Person, "fit") => Field::PersonFit,
        (Root::Person, "engagement") => Field::PersonEngagement,
        (Root::Person, "stage") => Field::PersonStage,
        (Root::Person, "status") => Field::PersonStatus,
        (Root::Person, _) => Field::PersonAttr(name.into()),
        (Root::Account, "fit") => Field::AccountFit,
        (Root::Account, "engagement") => Field::AccountEngagement,
        (Root::Account, "type") => Field::AccountType,
        (Root::Account, _) => match Aggregate::parse(name) {
            Some(a) => Field::Aggregate(a),
            None => Field::AccountAttr(name.into()),
        },
        (Root::Activity, "kind") => Field::ActivityKind,
        (Root::Activity, _) => Field::ActivityAttr(name.into()),
        (Root::Opportunity, "kind") => Field::OpportunityKind,
        (Root::Opportunity, "amount") => Field::OpportunityAmount,
        // Opportunity has no attributes (the checker allows only `kind` and `amount`).
        (Root::Opportunity, _) => Field::Absent,
        (Root::Thresholds, _) => Field::Threshold(name.into()),
    }
}

/// A run-time value. Lists stay borrowed from where they live.
#[derive(Debug, Clone, Copy)]
pub(crate) enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(&'a str),
    /// A JSON array attribute (its nulls are not elements, as in the interpreter's map).
    Json(&'a [Json]),
    /// The account's roles.
    Strings(&'a [String]),
    /// A list literal.
    Consts(&'a [Const]),
}

pub(crate) type R<'a> = Result<V<'a>, Stop>;

/// An attribute as the interpreter's variable map holds it: absent or null is missing.
fn attr<'a>(attrs: Option<&'a waterfall_core::Attrs>, name: &str) -> R<'a> {
    json(attrs.and_then(|a| a.get(name)).ok_or(Stop::Missing)?)
}

fn json(v: &Json) -> R<'_> {
    Ok(match v {
        Json::Null => return Err(Stop::Missing),
        Json::Bool(b) => V::Bool(*b),
        Json::Number(n) => V::Double(n.as_f64().ok_or(Stop::Unsure)?),
        Json::String(s) => V::Str(s),
        Json::Array(a) => V::Json(a),
        Json::Object(_) => return Err(Stop::Unsure),
    })
}

impl Node {
    /// Evaluates the node; `thresholds` are the ones compiled into the condition.
    pub(crate) fn eval<'a>(
        &'a self,
        ctx: &EvalContext<'a>,
        thresholds: &'a [(String, f64)],
    ) -> R<'a> {
        match self {
            Node::Lit(c) => Ok(c.val()),
            Node::List(items) => Ok(V::Consts(items)),
            Node::Field(f) => read(f, ctx, thresholds),
            Node::And(a, b) => {
                let left = boolean(a.eval(ctx, thresholds))?;
                if left == Ok(false) {
                    return Ok(V::Bool(false));
                }
                let right = match b.eval(ctx, thresholds)? {
                    V::Bool(r) => r,
                    _ => return Err(Stop::Unsure),
                };
                match left {
                    Ok(_) => Ok(V::Bool(right)),
                    Err(_) if !right => Ok(V::Bool(false)),
                    Err(e) => Err(e),
                }
            }
            Node::Or(a, b) => {
                let left = boolean(a.eval(ctx, thresholds))?;
                if left == Ok(true) {
                    return Ok(V::Bool(true));
                }
                let right = match b.eval(ctx, thresholds)? {
                    V::Bool(r) => r,
                    _ => return Err(Stop::Unsure),
                };
                match left {
                    Ok(_) => Ok(V::Bool(right)),
                    Err(_) if right => Ok(V::Bool(true)),
                    Err(e) => Err(e),
                }
            }
            Node::Not(a) => match a.eval(ctx, thresholds)? {
                V::Bool(b) => Ok(V::Bool(!b)),
                _ => Err(Stop::Unsure),
            },
            Node::Eq(a, b) => {
                let (l, r) = (a.eval(ctx, thresholds)?, b.eval(ctx, thresholds)?);
                Ok(V::Bool(equals(l, r)?))
            }
            Node::Ne(a, b) => {
                let (l, r) = (a.eval(ctx, thresholds)?, b.eval(ctx, thresholds)?);
                Ok(V::Bool(!equals(l, r)?))
            }
            Node::Cmp(c, a, b) => {
                let (l, r) = (a.eval(ctx, thresholds)?, b.eval(ctx, thresholds)?);
                let ord = compare(l, r).ok_or(Stop::Unsure)?;
                Ok(V::Bool(match c {
                    Cmp::Lt => ord == Ordering::Less,
                    Cmp::Le => ord != Ordering::Greater,
                    Cmp::Gt => ord == Ordering::Greater,
                    Cmp::Ge => ord != Ordering::Less,
                }))
            }
            Node::In(a, b) => {
                let (needle, hay) = (a.eval(ctx, thresholds)?, b.eval(ctx, thresholds)?);
                if is_list(needle) {
                    return Err(Stop::Unsure);
                }
                let found = match hay {
                    V::Consts(items) => items.iter().any(|c| scalar_eq(needle, c.val())),
                    V::Strings(items) => items.iter().any(|s| scalar_eq(needle, V::Str(s))),
                    V::Json(items) => items.iter().any(|j| match j {
                        // Nulls are not elements; a nested list or map never equals a scalar.
                        Json::Null | Json::Array(_) | Json::Object(_) => false,
                        other => json(other).is_ok_and(|v| scalar_eq(needle, v)),
                    }),
                    _ => return Err(Stop::Unsure),
                };
                Ok(V::Bool(found))
            }
            Node::Cond(c, t, f) => match c.eval(ctx, thresholds)? {
                V::Bool(true) => t.eval(ctx, thresholds),
                V::Bool(false) => f.eval(ctx, thresholds),
                _ => Err(Stop::Unsure),
            },
        }
    }
}

/// The interpreter's `try_bool`: a non-bool is a type error (not modelled here).
fn boolean(r: R<'_>) -> Result<Result<bool, Stop>, Stop> {
    match r {
        Ok(V::Bool(b)) => Ok(Ok(b)),
        Ok(_) | Err(Stop::Unsure) => Err(Stop::Unsure),
        Err(Stop::Missing) => Ok(Err(Stop::Missing)),
    }
}

fn is_list(v: V<'_>) -> bool {
    matches!(v, V::Json(_) | V::Strings(_) | V::Consts(_))
}

/// `==` between values: lists compared with lists are left to the interpreter.
fn equals(a: V<'_>, b: V<'_>) -> Result<bool, Stop> {
    match (is_list(a), is_list(b)) {
        (true, true) => Err(Stop::Unsure),
        (true, false) | (false, true) => Ok(false),
        (false, false) => Ok(scalar_eq(a, b)),
    }
}

/// Equality of two non-list values, as `Val::equals` of each CEL type.
fn scalar_eq(a: V<'_>, b: V<'_>) -> bool {
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Str(x), V::Str(y)) => x == y,
        _ => numeric_cmp(a, b) == Some(Ordering::Equal),
    }
}

/// Ordering of numbers across int, uint and double, as the CEL types compare them; `None`
/// when either is not a number or they are not comparable (NaN).
fn numeric_cmp(a: V<'_>, b: V<'_>) -> Option<Ordering> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(&y)),
        (V::UInt(x), V::UInt(y)) => Some(x.cmp(&y)),
        (V::Int(x), V::UInt(y)) => Some(u64::try_from(x).map_or(Ordering::Less, |x| x.cmp(&y))),
        (V::UInt(x), V::Int(y)) => Some(i64::try_from(x).map_or(Ordering::Greater, |x| x.cmp(&y))),
        (V::Double(x), V::Double(y)) => x.partial_cmp(&y),
        (V::Double(x), V::Int(y)) => x.partial_cmp(&(y as f64)),
        (V::Double(x), V::UInt(y)) => x.partial_cmp(&(y as f64)),
        (V::Int(x), V::Double(y)) => (x as f64).partial_cmp(&y),
        (V::UInt(x), V::Double(y)) => (x as f64).partial_cmp(&y),
        _ => None,
    }
}

/// `<` and friends: numbers with numbers, strings with strings; anything else is an error.
fn compare(a: V<'_>, b: V<'_>) -> Option<Ordering> {
    match (a, b) {
        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
        _ => numeric_cmp(a, b),
    }
}

/// Reads a field as the interpreter's per-root variable map would hold it: built-ins first,
/// then the attribute of the same name.
fn read<'a>(f: &'a Field, ctx: &EvalContext<'a>, thresholds: &'a [(String, f64)]) -> R<'a> {
    match f {
        Field::PersonFit => Ok(V::Double(ctx.fit)),
        Field::PersonEngagement => Ok(V::Double(ctx.engagement)),
        Field::PersonStage => match ctx.stage {
            Some(s) => Ok(V::Str(s)),
            None => attr(ctx.person, "stage"),
        },
        Field::PersonStatus => match ctx.status {
            Some(s) => Ok(V::Str(s)),
            None => attr(ctx.person, "status"),
        },
        Field::PersonAttr(name) => attr(ctx.person, name),
        Field::AccountFit => Ok(V::Double(ctx.account_fit)),
        Field::AccountEngagement => Ok(V::Double(ctx.account_engagement)),
        Field::AccountType => match ctx.account_type {
            Some(s) => Ok(V::Str(s)),
            None => attr(ctx.account, "type"),
        },
        Field::Aggregate(a) => match ctx.aggregates {
            Some(agg) => Ok(match a {
                Aggregate::EngagedPeople => V::Double(f64::from(agg.engaged_people)),
                Aggregate::MqlPeople => V::Double(f64::from(agg.mql_people)),
                Aggregate::OpenOpportunities => V::Double(f64::from(agg.open_opportunities)),
                Aggregate::WonOpportunities => V::Double(f64::from(agg.won_opportunities)),
                Aggregate::IntentSurges30d => V::Double(f64::from(agg.intent_surges_30d)),
                Aggregate::Roles => V::Strings(&agg.roles),
            }),
            None => attr(ctx.account, a.name()),
        },
        Field::AccountAttr(name) => attr(ctx.account, name),
        Field::ActivityKind => ctx.activity_kind.map(V::Str).ok_or(Stop::Missing),
        Field::ActivityAttr(name) => {
            if ctx.activity_kind.is_none() {
                return Err(Stop::Missing);
            }
            attr(ctx.activity, name)
        }
        Field::OpportunityKind => ctx
            .opportunity_kind
            .map(|k| V::Str(k.as_str()))
            .ok_or(Stop::Missing),
        Field::OpportunityAmount => {
            if ctx.opportunity_kind.is_none() {
                return Err(Stop::Missing);
            }
            ctx.opportunity_amount.map(V::Double).ok_or(Stop::Missing)
        }
        Field::Absent => Err(Stop::Missing),
        Field::Threshold(name) => {
            let (k, v) = thresholds
                .iter()
                .find(|(k, _)| k.as_str() == &**name)
                .ok_or(Stop::Missing)?;
            let v = ctx
                .thresholds
                .and_then(|o| o.iter().find(|(n, _)| n == k))
                .map_or(*v, |(_, o)| *o);
            Ok(V::Double(v))
        }
    }
}
