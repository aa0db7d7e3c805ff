//! The instants a query's predicates leave open to `eventTime`, read from bounds by literal
//! times: what a store's scan turns into day bounds ([`crate::days`]) and raw mode into the
//! log files it may skip ([`crate::raw::Pruning`]).
//!
//! Only a bare `eventTime` compared with a literal in the column's own type is a bound (the
//! planner casts literals of other types to it before filters reach a scan). A comparison of
//! anything else, such as the time cast to text, bounds nothing: text order is not time order.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Operator};
use datafusion::prelude::Expr;

/// The event time column the bounds are read from.
const TIME_COLUMN: &str = "eventTime";

/// The instants (ms, both inclusive) a conjunction of predicates leaves open to `eventTime`;
/// `None`: unbounded on that side.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeRange {
    pub(crate) from: Option<i64>,
    pub(crate) to: Option<i64>,
}

impl TimeRange {
    /// What `filters` (a conjunction, as a scan receives them) leave open.
    pub(crate) fn of(filters: &[Expr]) -> Self {
        filters
            .iter()
            .flat_map(split_conjunction)
            .fold(TimeRange::default(), |range, e| range.and(e))
    }

    /// The range narrowed by one more conjunct (unchanged if it is not a bound on
    /// `eventTime` by a literal time).
    fn and(self, e: &Expr) -> Self {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                match (time_column(left), time_literal(right), time_literal(left)) {
                    (true, Some(t), _) => self.bound(*op, t),
                    (false, _, Some(t)) if time_column(right) => match op.swap() {
                        Some(op) => self.bound(op, t),
                        None => self,
                    },
                    _ => self,
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if time_column(expr) => match (time_literal(low), time_literal(high)) {
                (Some(low), Some(high)) => {
                    self.bound(Operator::GtEq, low).bound(Operator::LtEq, high)
                }
                _ => self,
            },
            _ => self,
        }
    }

    /// `eventTime <op> t`.
    fn bound(self, op: Operator, t: i64) -> Self {
        match op {
            Operator::Eq => self.bound(Operator::GtEq, t).bound(Operator::LtEq, t),
            Operator::GtEq => Self {
                from: Some(self.from.map_or(t, |f| f.max(t))),
                ..self
            },
            Operator::Gt => self.bound(Operator::GtEq, t.saturating_add(1)),
            Operator::LtEq => Self {
                to: Some(self.to.map_or(t, |f| f.min(t))),
                ..self
            },
            Operator::Lt => self.bound(Operator::LtEq, t.saturating_sub(1)),
            _ => self,
        }
    }
}

fn time_column(e: &Expr) -> bool {
    matches!(e, Expr::Column(c) if c.name == TIME_COLUMN)
}

/// A literal instant in the column's own type (millisecond timestamps of a time zone; the
/// planner casts literals of other types to it). Other literals bound nothing here.
fn time_literal(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::TimestampMillisecond(Some(t), Some(_)), _) => Some(*t),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use datafusion::prelude::{ident, lit};

    fn at(text: &str) -> i64 {
        cairn_model::time::parse_utc(text).expect("time")
    }

    /// A literal time in the column's type.
    pub(crate) fn t(text: &str) -> Expr {
        Expr::Literal(
            ScalarValue::TimestampMillisecond(Some(at(text)), Some("UTC".into())),
            None,
        )
    }

    #[test]
    fn time_predicates_narrow_the_range_and_others_leave_it() {
        let time = || ident(TIME_COLUMN);
        let day3 = "2026-11-03T00:00:00Z";
        let day4 = "2026-11-04T00:00:00Z";
        // predicates, from, to, from offset (ms), to offset (ms)
        type Case<'a> = (Vec<Expr>, Option<&'a str>, Option<&'a str>, i64, i64);
        let cases: Vec<Case> = vec![
            (
                vec![time().gt_eq(t(day3)), time().lt(t(day4))],
                Some(day3),
                Some(day4),
                0,
                -1,
            ),
            (vec![time().gt(t(day3))], Some(day3), None, 1, 0),
            (vec![time().lt_eq(t(day4))], None, Some(day4), 0, 0),
            (vec![time().eq(t(day3))], Some(day3), Some(day3), 0, 0),
            // literal first
            (vec![t(day3).lt_eq(time())], Some(day3), None, 0, 0),
            (vec![t(day4).gt(time())], None, Some(day4), 0, -1),
            (
                vec![time().between(t(day3), t(day4))],
                Some(day3),
                Some(day4),
                0,
                0,
            ),
            // the tighter bound wins
            (
                vec![time().gt_eq(t(day3)), time().gt_eq(t(day4))],
                Some(day4),
                None,
                0,
                0,
            ),
            // not bounds on eventTime by a time
            (vec![time().not_eq(t(day3))], None, None, 0, 0),
            (vec![time().not_between(t(day3), t(day4))], None, None, 0, 0),
            (vec![ident("eventName").gt_eq(t(day3))], None, None, 0, 0),
            (vec![time().gt_eq(lit("2026-11-03"))], None, None, 0, 0),
            (
                vec![time().gt_eq(t(day3)).or(time().lt(t(day4)))],
                None,
                None,
                0,
                0,
            ),
        ];
        for (predicates, from, to, from_off, to_off) in cases {
            let range = predicates
                .iter()
                .fold(TimeRange::default(), |r, e| r.and(e));
            let expected = TimeRange {
                from: from.map(|f| at(f) + from_off),
                to: to.map(|f| at(f) + to_off),
            };
            assert_eq!(range, expected, "{predicates:?}");
        }
    }
}
