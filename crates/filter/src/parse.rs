//! The parser: pattern text to [`crate::Pattern`], refusing what is invalid with the position
//! and what was expected.

use crate::ast::*;
use crate::{number, regex_term, Regex, MAX_PATTERN_CHARS, MAX_REGEXES, MAX_WILDCARD_SELECTORS};

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
