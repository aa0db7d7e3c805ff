//! The pattern's syntax tree: what [`crate::parse`] builds and [`crate::Pattern::evaluate`] runs.

use crate::{number, Regex};

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
