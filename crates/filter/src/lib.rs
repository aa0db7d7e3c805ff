//! The CloudWatch Logs filter pattern language (`../shared/spec/filter-patterns.md`), as one
//! parser and one matcher for metric filters, subscription filters, FilterLogEvents and
//! TestMetricFilter: match-all, term patterns (words, quoted phrases, `?` any-of, `-`
//! exclusions, `%regex%`), JSON patterns (selectors with wildcards, comparisons,
//! `IS NULL/TRUE/FALSE`, `NOT EXISTS`, `&&`, `||`, parentheses) and space-delimited patterns.
//! Pure: no I/O. Invalid patterns are refused at parse time with the position (in characters)
//! and what was expected.

mod ast;
pub mod cis;
mod eval;
pub mod json;
pub mod number;
mod parse;
mod regex_term;
pub mod set;

pub use ast::*;
pub use eval::{lookup, resolve};
pub use parse::{parse, parse_selector};
pub use regex_term::Regex;
pub use set::MatchSet;

/// Longest pattern (API limit).
pub const MAX_PATTERN_CHARS: usize = 1024;
/// Regexes per pattern.
pub const MAX_REGEXES: usize = 2;
/// Wildcard selectors per pattern.
pub const MAX_WILDCARD_SELECTORS: usize = 3;

#[cfg(test)]
mod tests;
