//! Many patterns over one stream of events, each message read once (spec §1: one parser, one
//! matcher). For JSON patterns the message is read **lazily**: only the members some selector
//! names are built into values; everything else is skipped (validated for structure, never
//! allocated), which is what makes a pack of patterns cheaper than parsing every record.

use crate::json::Value;
use crate::{Condition, Expr, Pattern, Step};
use std::collections::BTreeMap;

/// Which members of the message the patterns read.
#[derive(Debug, Default, Clone)]
struct Need {
    /// Build the whole value here.
    all: bool,
    children: BTreeMap<String, Need>,
}

impl Need {
    fn add(&mut self, steps: &[Step]) {
        let mut node = self;
        for step in steps {
            if node.all {
                return;
            }
            match step {
                Step::Key(k) => node = node.children.entry(k.clone()).or_default(),
                _ => {
                    node.all = true;
                    return;
                }
            }
        }
        node.all = true;
    }
}

fn selectors(expr: &Expr, out: &mut Vec<Vec<Step>>) {
    match expr {
        Expr::Cond(
            Condition::Compare(s, ..)
            | Condition::IsNull(s)
            | Condition::IsBool(s, _)
            | Condition::NotExists(s),
        ) => out.push(s.clone()),
        Expr::And(a, b) | Expr::Or(a, b) => {
            selectors(a, out);
            selectors(b, out);
        }
    }
}

/// Compiled patterns, evaluated together.
#[derive(Debug, Clone)]
pub struct MatchSet {
    patterns: Vec<Pattern>,
    need: Need,
    any_json: bool,
}

impl MatchSet {
    /// The set of `patterns` (already parsed).
    pub fn new(patterns: Vec<Pattern>) -> Self {
        let mut need = Need::default();
        let mut any_json = false;
        for pattern in &patterns {
            if let Pattern::Json(expr) = pattern {
                any_json = true;
                let mut found = Vec::new();
                selectors(expr, &mut found);
                for steps in found {
                    need.add(&steps);
                }
            }
        }
        Self {
            patterns,
            need,
            any_json,
        }
    }

    /// Which patterns match `message`, in order.
    pub fn matches(&self, message: &str) -> Vec<bool> {
        let parsed = if self.any_json {
            lazy_parse(message, &self.need)
        } else {
            None
        };
        self.patterns
            .iter()
            .map(|p| match p {
                Pattern::Json(expr) => match &parsed {
                    Some(root @ Value::Object(_)) => crate::eval::eval_expr(root, expr),
                    _ => false,
                },
                other => other.matches(message),
            })
            .collect()
    }
}

struct Lazy<'a> {
    b: &'a [u8],
    at: usize,
    depth: usize,
}

impl<'a> Lazy<'a> {
    fn ws(&mut self) {
        while self.at < self.b.len() && matches!(self.b[self.at], b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    /// Skips one value, checking its structure; no allocation.
    fn skip(&mut self) -> Option<()> {
        self.ws();
        match *self.b.get(self.at)? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth > 512 {
                    return None;
                }
                let close = if self.b[self.at] == b'{' { b'}' } else { b']' };
                let object = close == b'}';
                self.at += 1;
                self.ws();
                if self.b.get(self.at) == Some(&close) {
                    self.at += 1;
                    self.depth -= 1;
                    return Some(());
                }
                loop {
                    if object {
                        self.ws();
                        if self.b.get(self.at) != Some(&b'"') {
                            return None;
                        }
                        self.skip_string()?;
                        self.ws();
                        if self.b.get(self.at) != Some(&b':') {
                            return None;
                        }
                        self.at += 1;
                    }
                    self.skip()?;
                    self.ws();
                    match self.b.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(&c) if c == close => {
                            self.at += 1;
                            self.depth -= 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                while self.at < self.b.len()
                    && matches!(
                        self.b[self.at],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.at += 1;
                }
                crate::number::parse(std::str::from_utf8(&self.b[start..self.at]).ok()?).map(|_| ())
            }
            _ => None,
        }
    }

    fn word(&mut self, w: &[u8]) -> Option<()> {
        self.b[self.at..].starts_with(w).then(|| self.at += w.len())
    }

    fn skip_string(&mut self) -> Option<()> {
        self.at += 1;
        loop {
            let rest = self.b.get(self.at..)?;
            let i = rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            self.at += i;
            match self.b[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => self.at += 2,
                _ => return None,
            }
        }
    }

    /// A member's key: borrowed from the message when it has no escapes.
    fn key(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        let start = self.at + 1;
        self.skip_string()?;
        let b: &'a [u8] = self.b;
        let raw = &b[start..self.at - 1];
        if raw.contains(&b'\\') {
            let text = std::str::from_utf8(&b[start - 1..self.at]).ok()?;
            crate::json::parse(text).and_then(|v| match v {
                Value::String(s) => Some(std::borrow::Cow::Owned(s)),
                _ => None,
            })
        } else {
            std::str::from_utf8(raw)
                .ok()
                .map(std::borrow::Cow::Borrowed)
        }
    }

    /// Builds the members `need` names; the rest is skipped.
    fn value(&mut self, need: &Need) -> Option<Value> {
        self.ws();
        if need.all || self.b.get(self.at) != Some(&b'{') {
            let (value, next) = crate::json::parse_at(self.b, self.at, self.depth)?;
            self.at = next;
            return Some(value);
        }
        self.depth += 1;
        if self.depth > 512 {
            return None;
        }
        self.at += 1;
        let mut members = Vec::new();
        self.ws();
        if self.b.get(self.at) == Some(&b'}') {
            self.at += 1;
            self.depth -= 1;
            return Some(Value::Object(members));
        }
        loop {
            self.ws();
            if self.b.get(self.at) != Some(&b'"') {
                return None;
            }
            let key = self.key()?;
            self.ws();
            if self.b.get(self.at) != Some(&b':') {
                return None;
            }
            self.at += 1;
            match need.children.get(key.as_ref()) {
                Some(child) => {
                    let value = self.value(child)?;
                    members.push((key.into_owned(), value));
                }
                None => self.skip()?,
            }
            self.ws();
            match self.b.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    self.depth -= 1;
                    return Some(Value::Object(members));
                }
                _ => return None,
            }
        }
    }
}

fn lazy_parse(message: &str, need: &Need) -> Option<Value> {
    let mut lazy = Lazy {
        b: message.as_bytes(),
        at: 0,
        depth: 0,
    };
    let value = lazy.value(need)?;
    lazy.ws();
    (lazy.at == lazy.b.len()).then_some(value)
}
