//! The CloudWatch Logs filter pattern language (`../shared/spec/filter-patterns.md`), as one
//! parser and one matcher for metric filters, subscription filters, FilterLogEvents and
//! TestMetricFilter: match-all, term patterns (words, quoted phrases, `?` any-of, `-`
//! exclusions, `%regex%`), JSON patterns (selectors with wildcards, comparisons,
//! `IS NULL/TRUE/FALSE`, `NOT EXISTS`, `&&`, `||`, parentheses) and space-delimited patterns.
//! Pure: no I/O. Invalid patterns are refused at parse time with the position (in characters)
//! and what was expected.

pub mod cis;
pub mod json;
pub mod number;
mod regex_term;
pub mod set;

pub use regex_term::Regex;
pub use set::MatchSet;
use std::collections::BTreeMap;

/// Longest pattern (API limit).
pub const MAX_PATTERN_CHARS: usize = 1024;
/// Regexes per pattern.
pub const MAX_REGEXES: usize = 2;
/// Wildcard selectors per pattern.
pub const MAX_WILDCARD_SELECTORS: usize = 3;

/// Why a pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter pattern at position {position}: {message}")]
pub struct PatternError {
    /// Character offset in the pattern.
    pub position: usize,
    /// What was wrong or expected.
    pub message: String,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number, as written, and its value.
    Number(String, number::Decimal),
    /// A string (with `*` wildcards at its ends).
    Text(String),
    /// `*` alone: any string or number.
    Any,
    /// `%regex%`.
    Regex(Regex),
}

/// One step of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.name` or `['key']`.
    Key(String),
    /// `[n]`.
    Index(usize),
    /// `.*` (members of an object).
    AnyMember,
    /// `[*]` (elements of an array, or members of an object).
    AnyElement,
}

/// A JSON condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `sel op value`.
    Compare(Vec<Step>, Op, Literal),
    /// `sel IS NULL`.
    IsNull(Vec<Step>),
    /// `sel IS TRUE` / `IS FALSE`.
    IsBool(Vec<Step>, bool),
    /// `sel NOT EXISTS`.
    NotExists(Vec<Step>),
}

/// A JSON expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A condition.
    Cond(Condition),
    /// `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`.
    Or(Box<Expr>, Box<Expr>),
}

/// A term's text.
#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    /// A word or a phrase (present as a substring; empty/blank phrases are always present).
    Text(String),
    /// A regex.
    Regex(Regex),
}

/// A term pattern.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Terms {
    /// Terms that must be present.
    pub required: Vec<Atom>,
    /// Terms that must be absent (`-`).
    pub excluded: Vec<Atom>,
    /// Terms of which one must be present when there are no others (`?`).
    pub optional: Vec<Atom>,
}

/// One test of a delimited field: `op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldTest {
    /// Operator.
    pub op: Op,
    /// Value.
    pub value: Literal,
}

/// A space-delimited field.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// `...`.
    Ellipsis,
    /// An unnamed trailing field (after a trailing comma).
    Unnamed,
    /// A named field with its tests, OR of ANDs.
    Named(String, Vec<Vec<FieldTest>>),
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// Matches every event.
    All,
    /// Terms.
    Terms(Terms),
    /// `{ ... }`.
    Json(Expr),
    /// `[ ... ]`.
    Delimited(Vec<Field>),
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    regexes: usize,
    wildcards: usize,
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError {
        position,
        message: message.into(),
    })
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{c}' | '\u{b}')
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '+' | '-')
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.at + n).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.at += 1;
        }
    }

    fn starts(&self, text: &str) -> bool {
        text.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    fn expect(&mut self, text: &str) -> Result<(), PatternError> {
        if self.starts(text) {
            self.at += text.chars().count();
            Ok(())
        } else {
            err(self.at, format!("expected {text:?}"))
        }
    }

    /// A quoted string after its opening `"`; `\"` and `\\` are escapes.
    fn quoted(&mut self) -> Result<String, PatternError> {
        let open = self.at;
        self.at += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return err(open, "unterminated quoted string: expected a closing '\"'"),
                Some('"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    match self.peek_at(1) {
                        Some(c) => out.push(c),
                        None => return err(open, "unterminated quoted string"),
                    }
                    self.at += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }

    /// A `%regex%` after its opening `%`.
    fn regex(&mut self) -> Result<Regex, PatternError> {
        let open = self.at;
        self.at += 1;
        let start = self.at;
        while self.peek().is_some_and(|c| c != '%') {
            if self.peek() == Some('\\') && self.peek_at(1).is_some() {
                self.at += 1;
            }
            self.at += 1;
        }
        if self.peek() != Some('%') {
            return err(open, "unterminated regex: expected a closing '%'");
        }
        let body: String = self.chars[start..self.at].iter().collect();
        self.at += 1;
        self.regexes += 1;
        if self.regexes > MAX_REGEXES {
            return err(open, "a filter pattern has at most 2 regular expressions");
        }
        regex_term::compile(&body).map_err(|(offset, message)| PatternError {
            position: start + offset,
            message,
        })
    }

    fn value(&mut self) -> Result<Literal, PatternError> {
        let at = self.at;
        match self.peek() {
            Some('"') => {
                let text = self.quoted()?;
                Ok(if text == "*" {
                    Literal::Any
                } else {
                    Literal::Text(text)
                })
            }
            Some('%') => Ok(Literal::Regex(self.regex()?)),
            Some('\'') => err(
                at,
                "single-quoted values are not supported; use double quotes",
            ),
            Some(c) if is_bare(c) => {
                let start = self.at;
                while self.peek().is_some_and(is_bare) {
                    self.at += 1;
                }
                let text: String = self.chars[start..self.at].iter().collect();
                if text == "null" {
                    return err(at, "null is not a value; use IS NULL");
                }
                if text == "*" {
                    return Ok(Literal::Any);
                }
                Ok(match number::parse(&text) {
                    Some(n) => Literal::Number(text, n),
                    None => Literal::Text(text),
                })
            }
            _ => err(
                at,
                "expected a value: a number, a \"quoted string\", a bare word or a %regex%",
            ),
        }
    }

    fn op(&mut self) -> Result<Op, PatternError> {
        let at = self.at;
        let op = if self.starts("!=") {
            Op::Ne
        } else if self.starts("<=") {
            Op::Le
        } else if self.starts(">=") {
            Op::Ge
        } else if self.starts("==") {
            return err(at, "'==' is not an operator; use '='");
        } else if self.starts("=") {
            Op::Eq
        } else if self.starts("<") {
            Op::Lt
        } else if self.starts(">") {
            Op::Gt
        } else {
            return err(at, "expected a comparison operator (=, !=, <, >, <=, >=)");
        };
        self.at += if matches!(op, Op::Ne | Op::Le | Op::Ge) {
            2
        } else {
            1
        };
        Ok(op)
    }

    fn check_operand(&self, at: usize, op: Op, value: &Literal) -> Result<(), PatternError> {
        let ordering = matches!(op, Op::Lt | Op::Gt | Op::Le | Op::Ge);
        if ordering && !matches!(value, Literal::Number(..)) {
            return err(at, "<, >, <= and >= need a number");
        }
        Ok(())
    }

    fn selector(&mut self) -> Result<Vec<Step>, PatternError> {
        let at = self.at;
        if self.peek() != Some('$') {
            return err(at, "expected a selector starting with '$'");
        }
        self.at += 1;
        let mut steps = Vec::new();
        let mut wildcards = 0;
        loop {
            let step_at = self.at;
            match (self.peek(), self.peek_at(1)) {
                (Some('.'), Some('.')) => {
                    return err(step_at, "recursive descent '..' is not supported")
                }
                (Some('.'), Some('*')) => {
                    self.at += 2;
                    steps.push(Step::AnyMember);
                    wildcards += 1;
                }
                (Some('.'), Some('[')) => {
                    self.at += 1;
                    continue;
                }
                (Some('.'), Some(c)) if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
                    self.at += 1;
                    let start = self.at;
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        self.at += 1;
                    }
                    steps.push(Step::Key(self.chars[start..self.at].iter().collect()));
                }
                (Some('.'), _) => return err(step_at + 1, "expected a member name after '.'"),
                (Some('['), Some('\'')) => {
                    self.at += 2;
                    let start = self.at;
                    while !(self.peek() == Some('\'') && self.peek_at(1) == Some(']')) {
                        if self.peek().is_none() {
                            return err(step_at, "expected ']' to close ['key']");
                        }
                        self.at += 1;
                    }
                    steps.push(Step::Key(self.chars[start..self.at].iter().collect()));
                    self.at += 2;
                }
                (Some('['), Some('*')) => {
                    self.at += 2;
                    self.expect("]")?;
                    steps.push(Step::AnyElement);
                    wildcards += 1;
                }
                (Some('['), Some(c)) if c.is_ascii_digit() => {
                    self.at += 1;
                    let start = self.at;
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.at += 1;
                    }
                    let text: String = self.chars[start..self.at].iter().collect();
                    if self.peek() != Some(']') {
                        return err(
                            self.at,
                            "expected ']' after an array index (slices are not supported)",
                        );
                    }
                    self.at += 1;
                    let index = text.parse().map_err(|_| PatternError {
                        position: start,
                        message: "array index too large".into(),
                    })?;
                    steps.push(Step::Index(index));
                }
                (Some('['), _) => {
                    return err(
                        step_at + 1,
                        "expected a non-negative index, '*' or a 'key' inside [...]",
                    )
                }
                _ => break,
            }
        }
        if steps.is_empty() {
            return err(at, "a selector needs at least one step after '$'");
        }
        if wildcards > 1 {
            return err(at, "a selector has at most one wildcard");
        }
        if wildcards == 1 {
            self.wildcards += 1;
            if self.wildcards > MAX_WILDCARD_SELECTORS {
                return err(at, "a pattern has at most 3 wildcard selectors");
            }
        }
        Ok(steps)
    }

    fn keyword(&mut self, word: &str) -> bool {
        let n = word.chars().count();
        if self.starts(word) && !self.peek_at(n).is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.at += n;
            true
        } else {
            false
        }
    }

    fn condition(&mut self) -> Result<Condition, PatternError> {
        let selector = self.selector()?;
        let before_ws = self.at;
        self.ws();
        let at = self.at;
        if self.keyword("IS") {
            if self.at == at + 2 && before_ws == at {
                return err(at, "expected whitespace before IS");
            }
            self.ws();
            let word_at = self.at;
            return if self.keyword("NULL") {
                Ok(Condition::IsNull(selector))
            } else if self.keyword("TRUE") {
                Ok(Condition::IsBool(selector, true))
            } else if self.keyword("FALSE") {
                Ok(Condition::IsBool(selector, false))
            } else if self.keyword("NOT") {
                err(word_at, "IS NOT is not supported; use != or NOT EXISTS")
            } else {
                err(word_at, "expected NULL, TRUE or FALSE after IS")
            };
        }
        if self.keyword("NOT") {
            self.ws();
            let word_at = self.at;
            return if self.keyword("EXISTS") {
                Ok(Condition::NotExists(selector))
            } else {
                err(word_at, "expected EXISTS after NOT")
            };
        }
        if self.starts("EXISTS") {
            return err(
                at,
                "EXISTS alone is not supported; use NOT EXISTS or a comparison",
            );
        }
        let op = self.op()?;
        self.ws();
        let value_at = self.at;
        let value = self.value()?;
        self.check_operand(value_at, op, &value)?;
        Ok(Condition::Compare(selector, op, value))
    }

    fn unary(&mut self) -> Result<Expr, PatternError> {
        self.ws();
        match self.peek() {
            Some('(') => {
                self.at += 1;
                let inner = self.or()?;
                self.ws();
                self.expect(")")?;
                Ok(inner)
            }
            Some('!') => err(self.at, "negation '!' is not supported"),
            _ => Ok(Expr::Cond(self.condition()?)),
        }
    }

    fn and(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.unary()?;
        loop {
            self.ws();
            if self.starts("&&") {
                self.at += 2;
                let right = self.unary()?;
                left = Expr::And(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn or(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.and()?;
        loop {
            self.ws();
            if self.starts("||") {
                self.at += 2;
                let right = self.and()?;
                left = Expr::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn json(&mut self) -> Result<Expr, PatternError> {
        self.expect("{")?;
        let expr = self.or()?;
        self.ws();
        if self.peek() != Some('}') {
            return err(self.at, "expected '&&', '||', ')' or the closing '}'");
        }
        self.at += 1;
        self.ws();
        if self.at != self.chars.len() {
            return err(self.at, "unexpected text after the closing '}'");
        }
        Ok(expr)
    }

    fn terms(&mut self) -> Result<Terms, PatternError> {
        let mut terms = Terms::default();
        self.ws();
        while self.at < self.chars.len() {
            let at = self.at;
            let prefix = match self.peek() {
                Some('-') => {
                    self.at += 1;
                    Some('-')
                }
                Some('?') => {
                    self.at += 1;
                    Some('?')
                }
                _ => None,
            };
            let atom = match self.peek() {
                Some('"') => Atom::Text(self.quoted()?),
                Some('%') => Atom::Regex(self.regex()?),
                Some(c) if is_word(c) => {
                    let start = self.at;
                    while self.peek().is_some_and(is_word) {
                        self.at += 1;
                    }
                    Atom::Text(self.chars[start..self.at].iter().collect())
                }
                Some(c) if !is_ws(c) => {
                    return err(
                        self.at,
                        format!("invalid character {c:?} in a term; quote it as a \"phrase\""),
                    )
                }
                _ => return err(at, "expected a term after the prefix"),
            };
            if self.peek().is_some_and(|c| !is_ws(c)) {
                let c = self.peek().unwrap_or(' ');
                return err(
                    self.at,
                    format!("invalid character {c:?} in a term; quote it as a \"phrase\""),
                );
            }
            match prefix {
                Some('-') => terms.excluded.push(atom),
                Some(_) => terms.optional.push(atom),
                None => terms.required.push(atom),
            }
            self.ws();
        }
        Ok(terms)
    }

    fn delimited(&mut self) -> Result<Vec<Field>, PatternError> {
        self.expect("[")?;
        let mut fields: Vec<Field> = Vec::new();
        self.ws();
        if self.peek() == Some(']') {
            self.at += 1;
            return self.end_delimited(fields);
        }
        loop {
            self.ws();
            let at = self.at;
            if self.starts("...") {
                self.at += 3;
                if fields.contains(&Field::Ellipsis) {
                    return err(at, "duplicate field '...'");
                }
                fields.push(Field::Ellipsis);
            } else if matches!(self.peek(), Some(']')) && !fields.is_empty() {
                // After a trailing comma: one unnamed field.
                fields.push(Field::Unnamed);
                self.at += 1;
                return self.end_delimited(fields);
            } else if self
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.at += 1;
                }
                let name: String = self.chars[start..self.at].iter().collect();
                if fields
                    .iter()
                    .any(|f| matches!(f, Field::Named(n, _) if *n == name))
                {
                    return err(start, format!("duplicate field {name:?}"));
                }
                self.ws();
                let mut alternatives: Vec<Vec<FieldTest>> = Vec::new();
                if self
                    .peek()
                    .is_some_and(|c| matches!(c, '=' | '!' | '<' | '>'))
                {
                    let mut current = vec![self.field_test()?];
                    loop {
                        self.ws();
                        let joiner = if self.starts("&&") {
                            "&&"
                        } else if self.starts("||") {
                            "||"
                        } else {
                            break;
                        };
                        self.at += 2;
                        self.ws();
                        let name_at = self.at;
                        let other_start = self.at;
                        while self
                            .peek()
                            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            self.at += 1;
                        }
                        let other: String = self.chars[other_start..self.at].iter().collect();
                        if other != name {
                            return err(
                                name_at,
                                format!("a condition of field {name:?} may only test {name:?}"),
                            );
                        }
                        self.ws();
                        let test = self.field_test()?;
                        if joiner == "&&" {
                            current.push(test);
                        } else {
                            alternatives.push(std::mem::take(&mut current));
                            current.push(test);
                        }
                    }
                    alternatives.push(current);
                }
                fields.push(Field::Named(name, alternatives));
            } else {
                return err(at, "expected a field name, '...' or ']'");
            }
            self.ws();
            match self.peek() {
                Some(',') => self.at += 1,
                Some(']') => {
                    self.at += 1;
                    return self.end_delimited(fields);
                }
                _ => return err(self.at, "expected ',' or ']'"),
            }
        }
    }

    fn end_delimited(&mut self, fields: Vec<Field>) -> Result<Vec<Field>, PatternError> {
        self.ws();
        if self.at != self.chars.len() {
            return err(self.at, "unexpected text after the closing ']'");
        }
        Ok(fields)
    }

    fn field_test(&mut self) -> Result<FieldTest, PatternError> {
        let op = self.op()?;
        self.ws();
        let at = self.at;
        let value = self.value()?;
        self.check_operand(at, op, &value)?;
        Ok(FieldTest { op, value })
    }
}

/// Parses a JSON selector on its own (`$.latency`, `$.items[0].name`): what metric values and
/// dimensions of JSON patterns reference.
pub fn parse_selector(text: &str) -> Result<Vec<Step>, PatternError> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        at: 0,
        regexes: 0,
        wildcards: 0,
    };
    let steps = parser.selector()?;
    if parser.at != parser.chars.len() {
        return err(parser.at, "unexpected text after the selector");
    }
    if steps
        .iter()
        .any(|s| matches!(s, Step::AnyMember | Step::AnyElement))
    {
        return err(0, "a reference cannot contain a wildcard");
    }
    Ok(steps)
}

/// The value a wildcard-free selector names in `root`, if any.
pub fn lookup<'a>(root: &'a json::Value, steps: &[Step]) -> Option<&'a json::Value> {
    resolve_one(root, steps).flatten()
}

/// Parses a pattern.
pub fn parse(pattern: &str) -> Result<Pattern, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    if chars.len() > MAX_PATTERN_CHARS {
        return err(
            MAX_PATTERN_CHARS,
            "a filter pattern is at most 1024 characters",
        );
    }
    let mut parser = Parser {
        chars,
        at: 0,
        regexes: 0,
        wildcards: 0,
    };
    parser.ws();
    let Some(first) = parser.peek() else {
        return Ok(Pattern::All);
    };
    match first {
        '{' => Ok(Pattern::Json(parser.json()?)),
        '[' => Ok(Pattern::Delimited(parser.delimited()?)),
        _ => {
            let terms = parser.terms()?;
            let blank = |a: &Atom| matches!(a, Atom::Text(t) if t.trim().is_empty());
            let only_blank_phrase = terms.excluded.is_empty()
                && terms.optional.is_empty()
                && terms.required.len() == 1
                && blank(&terms.required[0]);
            Ok(if only_blank_phrase {
                Pattern::All
            } else {
                Pattern::Terms(terms)
            })
        }
    }
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

#[cfg(test)]
mod tests;
