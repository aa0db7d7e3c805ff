//! The matcher: a parsed pattern over a message (terms, JSON conditions, space-delimited
//! fields), returning the values a pattern extracts.

use crate::ast::*;
use crate::{json, number};
use std::collections::BTreeMap;

/// The value a wildcard-free selector names in `root`, if any.
pub fn lookup<'a>(root: &'a json::Value, steps: &[Step]) -> Option<&'a json::Value> {
    resolve_one(root, steps).flatten()
}

fn present(atom: &Atom, message: &str) -> bool {
    match atom {
        Atom::Text(t) => t.trim().is_empty() || message.contains(t.as_str()),
        Atom::Regex(r) => r.is_match(message),
    }
}

/// `*` at the start means "ends with", at the end "starts with", at both "contains".
fn text_equals(pattern: &str, text: &str) -> bool {
    let starts = pattern.len() > 1 && pattern.starts_with('*');
    let ends = pattern.len() > 1 && pattern.ends_with('*');
    match (starts, ends) {
        (true, true) => text.contains(&pattern[1..pattern.len() - 1]),
        (true, false) => text.ends_with(&pattern[1..]),
        (false, true) => text.starts_with(&pattern[..pattern.len() - 1]),
        (false, false) => text == pattern,
    }
}

fn ordered(op: Op, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => ord == Equal,
        Op::Ne => ord != Equal,
        Op::Lt => ord == Less,
        Op::Gt => ord == Greater,
        Op::Le => ord != Greater,
        Op::Ge => ord != Less,
    }
}

/// `=` between a JSON candidate (string or number) and a literal.
fn json_equals(candidate: &json::Value, literal: &Literal) -> Option<bool> {
    Some(match (candidate, literal) {
        (json::Value::Number(n), Literal::Number(_, lit)) => {
            number::parse(n).is_some_and(|v| v == *lit)
        }
        (json::Value::String(s), Literal::Number(written, _)) => s == written,
        (json::Value::Number(n), Literal::Text(t)) => text_equals(t, n),
        (json::Value::String(s), Literal::Text(t)) => text_equals(t, s),
        (json::Value::Number(_) | json::Value::String(_), Literal::Any) => true,
        (json::Value::Number(n), Literal::Regex(r)) => r.is_match(n),
        (json::Value::String(s), Literal::Regex(r)) => r.is_match(s),
        _ => return None,
    })
}

fn compare_json(candidate: &json::Value, op: Op, literal: &Literal) -> bool {
    match op {
        Op::Eq => json_equals(candidate, literal) == Some(true),
        Op::Ne => json_equals(candidate, literal) == Some(false),
        _ => match (candidate, literal) {
            (json::Value::Number(n), Literal::Number(_, lit)) => {
                number::parse(n).is_some_and(|v| ordered(op, v.cmp(lit)))
            }
            _ => false,
        },
    }
}

/// The candidates a selector resolves to.
pub fn resolve<'a>(root: &'a json::Value, steps: &[Step]) -> Vec<&'a json::Value> {
    let mut current = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for value in current {
            match (step, value) {
                (Step::Key(k), json::Value::Object(_)) => next.extend(value.get(k)),
                (Step::Index(i), json::Value::Array(items)) => next.extend(items.get(*i)),
                (Step::AnyMember | Step::AnyElement, json::Value::Object(members)) => {
                    // Each distinct key once, its last value.
                    let mut seen: Vec<&str> = Vec::new();
                    for (k, _) in members.iter().rev() {
                        if !seen.contains(&k.as_str()) {
                            seen.push(k);
                        }
                    }
                    next.extend(seen.iter().rev().filter_map(|k| value.get(k)));
                }
                (Step::AnyElement, json::Value::Array(items)) => next.extend(items.iter()),
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// The one candidate of a selector without wildcards (no allocation); `None` when the
/// selector has a wildcard.
fn resolve_one<'a>(root: &'a json::Value, steps: &[Step]) -> Option<Option<&'a json::Value>> {
    let mut current = root;
    for step in steps {
        current = match (step, current) {
            (Step::AnyMember | Step::AnyElement, _) => return None,
            (Step::Key(k), json::Value::Object(_)) => match current.get(k) {
                Some(v) => v,
                None => return Some(None),
            },
            (Step::Index(i), json::Value::Array(items)) => match items.get(*i) {
                Some(v) => v,
                None => return Some(None),
            },
            _ => return Some(None),
        };
    }
    Some(Some(current))
}

fn eval_condition(root: &json::Value, condition: &Condition) -> bool {
    let steps = match condition {
        Condition::Compare(s, ..)
        | Condition::IsNull(s)
        | Condition::IsBool(s, _)
        | Condition::NotExists(s) => s,
    };
    if !steps
        .iter()
        .any(|s| matches!(s, Step::AnyMember | Step::AnyElement))
    {
        let found = resolve_one(root, steps).flatten();
        return match (condition, found) {
            (Condition::NotExists(_), found) => found.is_none(),
            (_, None) => false,
            (Condition::IsNull(_), Some(v)) => matches!(v, json::Value::Null),
            (Condition::IsBool(_, b), Some(v)) => matches!(v, json::Value::Bool(x) if x == b),
            (Condition::Compare(_, op, lit), Some(v)) => compare_json(v, *op, lit),
        };
    }
    match condition {
        Condition::NotExists(s) => resolve(root, s).is_empty(),
        Condition::IsNull(s) => resolve(root, s)
            .iter()
            .any(|v| matches!(v, json::Value::Null)),
        Condition::IsBool(s, b) => resolve(root, s)
            .iter()
            .any(|v| matches!(v, json::Value::Bool(x) if x == b)),
        Condition::Compare(s, op, lit) => {
            resolve(root, s).iter().any(|v| compare_json(v, *op, lit))
        }
    }
}

pub(crate) fn eval_expr(root: &json::Value, expr: &Expr) -> bool {
    match expr {
        Expr::Cond(c) => eval_condition(root, c),
        Expr::And(a, b) => eval_expr(root, a) && eval_expr(root, b),
        Expr::Or(a, b) => eval_expr(root, a) || eval_expr(root, b),
    }
}

/// A message field: its value and its span in the message (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MessageField<'a> {
    value: &'a str,
    start: usize,
}

fn split_fields(message: &str) -> Vec<MessageField<'_>> {
    let bytes = message.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if matches!(bytes[i], b' ' | b'\t') {
            i += 1;
            continue;
        }
        let start = i;
        let close = match bytes[i] {
            b'"' => Some(b'"'),
            b'[' => Some(b']'),
            _ => None,
        };
        if let Some(close) = close {
            if let Some(end) = bytes[i + 1..].iter().position(|&b| b == close) {
                let end = i + 1 + end;
                out.push(MessageField {
                    value: &message[i + 1..end],
                    start,
                });
                i = end + 1;
                continue;
            }
        }
        while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        out.push(MessageField {
            value: &message[start..i],
            start,
        });
    }
    out
}

fn field_passes(text: &str, test: &FieldTest) -> bool {
    let equals = |lit: &Literal| match lit {
        Literal::Number(written, value) => match number::parse(text) {
            Some(v) => v == *value,
            None => text == written,
        },
        Literal::Text(t) => text_equals(t, text),
        Literal::Any => true,
        Literal::Regex(r) => r.is_match(text),
    };
    match test.op {
        Op::Eq => equals(&test.value),
        Op::Ne => !equals(&test.value),
        op => match (&test.value, number::parse(text)) {
            (Literal::Number(_, lit), Some(v)) => ordered(op, v.cmp(lit)),
            _ => false,
        },
    }
}

/// Values a matching event exposes (space-delimited patterns: `$name` and `$position`).
pub type Extracted = BTreeMap<String, String>;

fn eval_delimited(fields: &[Field], message: &str) -> Option<Extracted> {
    if fields.is_empty() {
        return Some(Extracted::new());
    }
    let parts = split_fields(message);
    let ellipsis = fields.iter().position(|f| *f == Field::Ellipsis);
    let n = fields.len() - usize::from(ellipsis.is_some());
    if parts.len() < n {
        return None;
    }
    // (pattern field, message text, 1-based position or None for absorbed text)
    let mut aligned: Vec<(&Field, String, Option<usize>)> = Vec::new();
    let mut extracted = Extracted::new();
    match ellipsis {
        None => {
            for (i, field) in fields.iter().enumerate() {
                if i + 1 == fields.len() && parts.len() > n {
                    let rest = message[parts[i].start..].trim_end().to_owned();
                    aligned.push((field, rest, None));
                } else {
                    aligned.push((field, parts[i].value.to_owned(), Some(i + 1)));
                }
            }
        }
        Some(e) => {
            let after = fields.len() - e - 1;
            for (i, field) in fields[..e].iter().enumerate() {
                aligned.push((field, parts[i].value.to_owned(), Some(i + 1)));
            }
            for (position, part) in parts.iter().enumerate().take(parts.len() - after).skip(e) {
                extracted.insert(format!("${}", position + 1), part.value.to_owned());
            }
            for (j, field) in fields[e + 1..].iter().enumerate() {
                let index = parts.len() - after + j;
                aligned.push((field, parts[index].value.to_owned(), Some(index + 1)));
            }
        }
    }
    for (field, text, position) in &aligned {
        match field {
            Field::Named(name, alternatives) => {
                let passes = alternatives.is_empty()
                    || alternatives
                        .iter()
                        .any(|all| all.iter().all(|t| field_passes(text, t)));
                if !passes {
                    return None;
                }
                extracted.insert(format!("${name}"), text.clone());
            }
            Field::Unnamed => {
                if let Some(p) = position {
                    extracted.insert(format!("${p}"), text.clone());
                }
            }
            Field::Ellipsis => {}
        }
    }
    Some(extracted)
}

impl Pattern {
    /// Whether the pattern matches `message`.
    pub fn matches(&self, message: &str) -> bool {
        self.evaluate(message).is_some()
    }

    /// `Some(extracted values)` when the pattern matches `message`.
    pub fn evaluate(&self, message: &str) -> Option<Extracted> {
        let matched = match self {
            Self::All => true,
            Self::Terms(t) => {
                if t.required.is_empty() && t.excluded.is_empty() {
                    t.optional.iter().any(|a| present(a, message))
                } else {
                    t.required.iter().all(|a| present(a, message))
                        && !t.excluded.iter().any(|a| present(a, message))
                }
            }
            Self::Json(expr) => match json::parse(message) {
                Some(root @ json::Value::Object(_)) => eval_expr(&root, expr),
                _ => false,
            },
            Self::Delimited(fields) => return eval_delimited(fields, message),
        };
        matched.then(Extracted::new)
    }
}
