//! Time predicates on a store become bounds on its days.
//!
//! A store's files lie in `date=YYYY-MM-DD/` directories, the UTC day of every event they
//! hold (events without a time are not stored). A query bounded in time
//! (`eventTime >= TIMESTAMP '2026-11-03 00:00:00' AND eventTime < ...`) then needs only the
//! directories of the days the range touches: [`StoreDays`] adds the implied
//! `date >= 'first day' AND date <= 'last day'` to the store's scan, and the listing skips the
//! other days before a file is opened. A time bound that cuts into a day stays, so rows are
//! exactly those the predicate admits; the added bounds only leave out files that cannot hold
//! such rows.
//!
//! A time bound that every instant of those days satisfies (a range of whole days, bounded on
//! both sides:
//! `eventTime >= TIMESTAMP '2026-11-03 00:00:00' AND eventTime < TIMESTAMP '2026-11-04 00:00:00'`)
//! is then dropped from the filter on the scan and from the scan's own filters, so the Parquet
//! reader does not decode and compare `eventTime` on every row of those days to keep them all
//! (2–3 times the rest of the scan's work for a day's top errors). This rests on the store's
//! layout: Cairn writes every event into the directory of its `eventTime`'s UTC day, and keeps
//! it there (retention deletes whole days); a file put by hand into another day's directory
//! would be read as that day's. The scan then also reads only day names of the `YYYY-MM-DD`
//! shape: a directory of another shape holds events of years outside 0000–9999, which no range
//! bounded on both sides within the day names' years admits.

use crate::store::{partition_date, DAY_MS, PARTITION_COLUMN};
use crate::time_range::TimeRange;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::Result;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Filter, LogicalPlan, TableScan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::prelude::{ident, lit, Expr};
use std::sync::Arc;

/// The earliest and latest instants (ms) turned into day bounds: 1970 to the end of 9999, whose
/// days are written `YYYY-MM-DD` (day names compare in time order only in one shape).
const FIRST_MS: i64 = 0;
const LAST_MS: i64 = 253_402_300_799_999;

/// The shape of a day name, as a `LIKE` pattern.
const DAY_SHAPE: &str = "____-__-__";

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
        match plan {
            LogicalPlan::TableScan(scan) if is_store_scan(&scan) => {
                let range = TimeRange::of(&scan.filters);
                Ok(with_days(scan, range).update_data(LogicalPlan::TableScan))
            }
            LogicalPlan::Filter(filter) => without_implied_bounds(filter),
            other => Ok(Transformed::no(other)),
        }
    }
}

/// A filter on a store's scan without the bounds on `eventTime` that the days it reads imply
/// (and without the filter if nothing else is left); the scan gets the days' bounds. A filter
/// on anything else, or without such bounds, is left as it is.
fn without_implied_bounds(filter: Filter) -> Result<Transformed<LogicalPlan>> {
    let conjuncts: Vec<Expr> = split_conjunction(&filter.predicate)
        .into_iter()
        .cloned()
        .collect();
    let range = TimeRange::of(&conjuncts);
    let scan = match filter.input.as_ref() {
        LogicalPlan::TableScan(scan)
            if is_store_scan(scan) && conjuncts.iter().any(|e| implied_by_days(range, e)) =>
        {
            scan.clone()
        }
        _ => return Ok(Transformed::no(LogicalPlan::Filter(filter))),
    };
    let scan = LogicalPlan::TableScan(with_days(scan, range).data);
    let kept: Vec<Expr> = conjuncts
        .into_iter()
        .filter(|e| !implied_by_days(range, e))
        .collect();
    Ok(Transformed::yes(match conjunction(kept) {
        Some(predicate) => LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(scan))?),
        None => scan,
    }))
}

/// A store's scan with the day bounds of `range` among its filters, and without the bounds on
/// `eventTime` that those days imply.
fn with_days(mut scan: TableScan, range: TimeRange) -> Transformed<TableScan> {
    let added: Vec<Expr> = day_bounds(range)
        .into_iter()
        .filter(|bound| !scan.filters.contains(bound))
        .collect();
    let implied = |e: &Expr| implied_by_days(range, e);
    let drops = scan.filters.iter().flat_map(split_conjunction).any(implied);
    if added.is_empty() && !drops {
        return Transformed::no(scan);
    }
    if drops {
        scan.filters = scan
            .filters
            .iter()
            .flat_map(split_conjunction)
            .filter(|e| !implied(e))
            .cloned()
            .collect();
        if !scan.filters.contains(&well_formed_days()) {
            scan.filters.push(well_formed_days());
        }
    }
    scan.filters.extend(added);
    Transformed::yes(scan)
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

/// The instants of the days whose files the day bounds of `range` keep (both inclusive; `None`:
/// no bound on that side), as [`day_bounds`] writes them.
fn days_span(range: TimeRange) -> (Option<i64>, Option<i64>) {
    let in_shape = |t: &i64| (FIRST_MS..=LAST_MS).contains(t);
    let first_instant = |t: i64| t.div_euclid(DAY_MS) * DAY_MS;
    (
        range.from.filter(in_shape).map(first_instant),
        range
            .to
            .filter(in_shape)
            .map(|t| first_instant(t) + DAY_MS - 1),
    )
}

/// Whether `e` is a bound on `eventTime` that every instant of the days kept for `range`
/// satisfies, so that reading only those days already applies it. Only a range bounded on both
/// sides (within the years the day names are written for) implies anything: a store has no
/// directory of a day outside those years unless an event's own time lies outside them, and
/// one side's bound alone would have to read such a directory, comparing `eventTime`.
fn implied_by_days(range: TimeRange, e: &Expr) -> bool {
    let own = TimeRange::of(std::slice::from_ref(e));
    if own == TimeRange::default() {
        return false; // not a bound on eventTime
    }
    let (Some(first), Some(last)) = days_span(range) else {
        return false;
    };
    own.from.is_none_or(|f| f <= first) && own.to.is_none_or(|t| t >= last)
}

/// Only day names of the `YYYY-MM-DD` shape: with bounds dropped because whole days imply
/// them, a directory of another shape (a year outside 0000–9999) holds no event they admit.
fn well_formed_days() -> Expr {
    ident(PARTITION_COLUMN).like(lit(DAY_SHAPE))
}

/// The filters on the partition column a range implies: the days of [`days_span`]. A day
/// whose name is not of the `YYYY-MM-DD` shape is never left out.
fn day_bounds(range: TimeRange) -> Vec<Expr> {
    let odd = || ident(PARTITION_COLUMN).not_like(lit(DAY_SHAPE));
    let (first, last) = days_span(range);
    let first = first.map(|t| ident(PARTITION_COLUMN).gt_eq(lit(partition_date(t))));
    let last = last.map(|t| ident(PARTITION_COLUMN).lt_eq(lit(partition_date(t))));
    [first, last]
        .into_iter()
        .flatten()
        .map(|bound| bound.or(odd()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        cairn_model::time::parse_utc(text).expect("time")
    }

    #[test]
    fn only_bounds_that_whole_days_satisfy_are_implied_by_them() {
        use crate::time_range::tests::t;
        use datafusion::prelude::ident;
        let time = || ident("eventTime");
        let whole = vec![
            time().gt_eq(t("2026-11-03T00:00:00Z")),
            time().lt(t("2026-11-05T00:00:00Z")),
        ];
        let range = TimeRange::of(&whole);
        assert!(whole.iter().all(|e| implied_by_days(range, e)));
        // A weaker bound is implied too; a bound that cuts into a day is not.
        assert!(implied_by_days(
            range,
            &time().gt(t("2026-11-01T00:00:00Z"))
        ));
        let within = [
            time().gt_eq(t("2026-11-03T00:00:00Z")),
            time().lt_eq(t("2026-11-04T23:59:59Z")),
        ];
        let cut = TimeRange::of(&within);
        assert!(implied_by_days(cut, &within[0]));
        assert!(!implied_by_days(cut, &within[1]));
        let later = [time().gt(t("2026-11-03T00:00:00Z"))];
        assert!(!implied_by_days(TimeRange::of(&later), &later[0]));
        assert!(!implied_by_days(
            range,
            &time().eq(t("2026-11-03T00:00:00Z"))
        ));
        // What is not a bound on eventTime, and a range open on one side, imply nothing.
        assert!(!implied_by_days(range, &ident("errorCode").is_not_null()));
        assert!(!implied_by_days(TimeRange::of(&whole[..1]), &whole[0]));
        assert!(!implied_by_days(TimeRange::of(&whole[1..]), &whole[1]));
        assert!(!implied_by_days(
            TimeRange::of(&whole[..1]),
            &time().lt(t("2026-11-05T00:00:00Z"))
        ));
        let before_1970 = [time().gt_eq(t("1969-12-01T00:00:00Z"))];
        assert!(!implied_by_days(
            TimeRange::of(&before_1970),
            &before_1970[0]
        ));
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
