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
use crate::time_range::TimeRange;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::Result;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{LogicalPlan, TableScan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::prelude::{ident, lit, Expr};

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
        let added: Vec<Expr> = day_bounds(TimeRange::of(&scan.filters))
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
