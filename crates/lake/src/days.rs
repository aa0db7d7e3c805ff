//! Time predicates on a store become bounds on its days.
//!
//! A store's files lie in `date=YYYY-MM-DD/` directories, the UTC day of every event they
//! hold (events without a time are not stored). A query bounded in time
//! (`eventTime >= TIMESTAMP '2026-11-03 00:00:00' AND eventTime < ...`) then needs only the
//! directories of the days the range touches: [`StoreDays`] adds the implied
//! `date >= 'first day' AND date <= 'last day'` to the store's scan, and the listing skips the
//! other days before a file is opened. The time predicate itself stays, so rows are exactly
//! those it admits; the added bounds only leave out files that cannot hold such rows.

use crate::store::{partition_date, PARTITION_COLUMN};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, LogicalPlan, Operator, TableScan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::prelude::{ident, lit, Expr};

/// The event time column the bounds are read from.
const TIME_COLUMN: &str = "eventTime";

/// The earliest and latest instants (ms) turned into day bounds: 1970 to the end of 9999, whose
/// days are written `YYYY-MM-DD` (day names compare in time order only in one shape).
const FIRST_MS: i64 = 0;
const LAST_MS: i64 = 253_402_300_799_999;

/// The optimizer rule: on a scan of a store's files, the day bounds implied by its filters on
/// `eventTime` (see the module documentation).
#[derive(Debug, Default)]
pub struct StoreDays;

impl OptimizerRule for StoreDays {
    fn name(&self) -> &str {
        "cairn_store_days"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::TableScan(mut scan) = plan else {
            return Ok(Transformed::no(plan));
        };
        if !is_store_scan(&scan) {
            return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
        }
        let range = scan
            .filters
            .iter()
            .flat_map(split_conjunction)
            .fold(TimeRange::default(), |range, e| range.and(e));
        let added: Vec<Expr> = day_bounds(range)
            .into_iter()
            .filter(|bound| !scan.filters.contains(bound))
            .collect();
        if added.is_empty() {
            return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
        }
        scan.filters.extend(added);
        Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
    }
}

/// A scan of a store: the listing of Parquet files in `date=` directories that
/// [`crate::query::register_store`] builds.
fn is_store_scan(scan: &TableScan) -> bool {
    let Ok(provider) = source_as_provider(&scan.source) else {
        return false;
    };
    provider
        .downcast_ref::<ListingTable>()
        .is_some_and(|table| {
            matches!(
                table.options().table_partition_cols.as_slice(),
                [(name, DataType::Utf8)] if name == PARTITION_COLUMN
            )
        })
}

/// The instants (ms, both inclusive) a conjunction of predicates leaves open to `eventTime`;
/// `None`: unbounded on that side.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct TimeRange {
    from: Option<i64>,
    to: Option<i64>,
}

impl TimeRange {
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

/// The filters on the partition column a range implies. A day whose name is not of the
/// `YYYY-MM-DD` shape is never left out.
fn day_bounds(range: TimeRange) -> Vec<Expr> {
    let in_shape = |t: &i64| (FIRST_MS..=LAST_MS).contains(t);
    let odd = || ident(PARTITION_COLUMN).not_like(lit("____-__-__"));
    let mut bounds = Vec::new();
    if let Some(from) = range.from.filter(in_shape) {
        bounds.push(
            ident(PARTITION_COLUMN)
                .gt_eq(lit(partition_date(from)))
                .or(odd()),
        );
    }
    if let Some(to) = range.to.filter(in_shape) {
        bounds.push(
            ident(PARTITION_COLUMN)
                .lt_eq(lit(partition_date(to)))
                .or(odd()),
        );
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        cairn_model::time::parse_utc(text).expect("time")
    }

    fn t(text: &str) -> Expr {
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

    #[test]
    fn only_bounds_inside_four_digit_years_become_day_bounds() {
        let range = |from, to| TimeRange {
            from: Some(from),
            to: Some(to),
        };
        assert_eq!(
            day_bounds(range(
                at("2026-11-03T05:00:00Z"),
                at("2026-11-04T00:00:00Z") - 1
            ))
            .len(),
            2
        );
        assert_eq!(day_bounds(range(FIRST_MS, LAST_MS)).len(), 2);
        assert!(day_bounds(range(FIRST_MS - 1, LAST_MS + 1)).is_empty());
        let text = format!(
            "{:?}",
            day_bounds(range(
                at("2026-11-03T05:00:00Z"),
                at("2026-11-04T00:00:00Z") - 1
            ))
        );
        assert!(
            text.contains("2026-11-03") && !text.contains("2026-11-04"),
            "{text}"
        );
    }
}
