//! What one query, and all of them together, may take from the server.
//!
//! * **Memory.** Every query runs on its own memory pool ([`QueryPool`]), bounded by
//!   `memory_per_query` and drawing from one pool for the whole server bounded by
//!   `memory_total`. Operators that can spill (sorts) spill to disk when refused; the others
//!   fail the query with DataFusion's `Resources exhausted` error naming the limit. Result
//!   batches are counted against the same per-query limit as they arrive
//!   ([`crate::query::execute`]), so a `SELECT *` over everything fails instead of filling RAM.
//! * **Values that grow without input.** `repeat`, `lpad`, `rpad`, `array_repeat`, `range` and
//!   `generate_series` make values whose size is an argument, not the data: their size
//!   arguments must be literals within [`MAX_GENERATED`] ([`check_plan`]); recursive CTEs are
//!   off.
//! * **Time.** A query running longer than `timeout` is stopped (its task aborted, its memory
//!   freed); CancelQuery does the same at once.
//! * **Concurrency.** At most `max_concurrent` queries queued or running, at most
//!   `max_per_user` of them by one user.

use crate::LakeError;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::scalar::ScalarValue;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The largest value a size argument of `repeat`, `lpad`, `rpad`, `array_repeat`, `range` or
/// `generate_series` may ask for (characters, elements or rows).
pub const MAX_GENERATED: i64 = 100_000;

/// A server's query limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// Memory one query may reserve (operators and its result), bytes.
    pub memory_per_query: usize,
    /// Memory every query together may reserve, bytes.
    pub memory_total: usize,
    /// How long a query may run.
    pub timeout: Duration,
    /// Queries queued or running at once.
    pub max_concurrent: usize,
    /// Queries queued or running at once for one user.
    pub max_per_user: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            memory_per_query: 512 * 1024 * 1024,
            memory_total: 1024 * 1024 * 1024,
            timeout: Duration::from_secs(600),
            max_concurrent: crate::query::MAX_CONCURRENT,
            max_per_user: 5,
        }
    }
}

/// One query's memory pool: refuses beyond its own limit, and draws every byte from the
/// server's pool (which refuses beyond the total).
#[derive(Debug)]
pub struct QueryPool {
    server: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
}

impl QueryPool {
    /// A pool of at most `limit` bytes drawn from `server`.
    pub fn new(server: Arc<dyn MemoryPool>, limit: usize) -> Self {
        Self {
            server,
            limit,
            used: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "query pool ({} of {} bytes)",
            self.used.load(Ordering::Relaxed),
            self.limit
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "cairn-query"
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.server.grow(reservation, additional);
        self.used.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.server.shrink(reservation, shrink);
        self.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        let limit = self.limit;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                let new = used.checked_add(additional)?;
                (new <= limit).then_some(new)
            })
            .map_err(|used| {
                datafusion::error::DataFusionError::ResourcesExhausted(format!(
                    "the query needs more than its memory limit of {limit} bytes (query_memory_mib): {used} reserved, {additional} more asked by {}; aggregate or filter more, or add a LIMIT",
                    reservation.consumer().name()
                ))
            })?;
        if let Err(e) = self.server.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(datafusion::error::DataFusionError::ResourcesExhausted(format!(
                "the server's queries together reached their memory limit (query_memory_total_mib): {e}"
            )));
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

/// The server's memory for queries, and the limits each one gets.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: QueryLimits,
    pool: Arc<dyn MemoryPool>,
}

impl Budget {
    /// A budget of `limits`.
    pub fn new(limits: QueryLimits) -> Self {
        Self {
            pool: Arc::new(GreedyMemoryPool::new(limits.memory_total)),
            limits,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Bytes every query together holds now.
    pub fn reserved(&self) -> usize {
        self.pool.reserved()
    }

    /// A session for one query, on its own pool.
    pub fn session(&self) -> datafusion::prelude::SessionContext {
        let mut runtime = (*crate::query::shared_runtime()).clone();
        runtime.memory_pool = Arc::new(QueryPool::new(
            self.pool.clone(),
            self.limits.memory_per_query,
        ));
        crate::query::session_on(Arc::new(runtime))
    }
}

fn literal_int(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) => match value {
            ScalarValue::Int8(Some(v)) => Some(i64::from(*v)),
            ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
            ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
            ScalarValue::Int64(Some(v)) => Some(*v),
            ScalarValue::UInt8(Some(v)) => Some(i64::from(*v)),
            ScalarValue::UInt16(Some(v)) => Some(i64::from(*v)),
            ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
            ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
            _ => None,
        },
        Expr::Cast(cast) => literal_int(&cast.expr),
        Expr::TryCast(cast) => literal_int(&cast.expr),
        Expr::Negative(inner) => literal_int(inner).map(|v| -v),
        _ => None,
    }
}

fn too_big(function: &str, what: &str) -> LakeError {
    LakeError::InvalidQuery(format!(
        "{function}: its {what} must be a literal of at most {MAX_GENERATED}, so that a query's values stay bounded"
    ))
}

/// Refuses a call whose output size is an argument beyond [`MAX_GENERATED`] (or not a literal).
fn check_call(name: &str, args: &[Expr]) -> Result<(), LakeError> {
    let within = |e: &Expr| literal_int(e).is_some_and(|v| v <= MAX_GENERATED);
    let span = || {
        let ints: Vec<Option<i64>> = args.iter().map(literal_int).collect();
        match ints.as_slice() {
            [Some(stop)] => Some(stop.saturating_abs()),
            [Some(start), Some(stop)] => Some(stop.saturating_sub(*start).saturating_abs()),
            [Some(start), Some(stop), Some(step)] if *step != 0 => {
                Some((stop.saturating_sub(*start) / step).saturating_abs())
            }
            _ => None,
        }
    };
    match name {
        "repeat" | "lpad" | "rpad" | "array_repeat" if !args.get(1).is_some_and(within) => {
            Err(too_big(name, "count or length"))
        }
        "range" | "generate_series" if span().is_none_or(|s| s > MAX_GENERATED) => {
            Err(too_big(name, "number of elements"))
        }
        _ => Ok(()),
    }
}

/// Refuses calls whose output size is an argument beyond [`MAX_GENERATED`] (or not a
/// literal), anywhere in `plan`, subqueries included. Table functions in `FROM`
/// (`generate_series(1, n)` as a table) stream their rows and are bounded by time instead.
pub fn check_plan(plan: &LogicalPlan) -> Result<(), LakeError> {
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(call) = e {
                    if let Err(error) = check_call(call.func.name(), &call.args) {
                        refused = Some(error);
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    refused.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query;

    fn budget(per_query_mib: usize, total_mib: usize) -> Budget {
        Budget::new(QueryLimits {
            memory_per_query: per_query_mib * 1024 * 1024,
            memory_total: total_mib * 1024 * 1024,
            ..QueryLimits::default()
        })
    }

    async fn run(budget: &Budget, sql: &str) -> Result<usize, String> {
        let ctx = budget.session();
        let frame = ctx
            .sql_with_options(sql, query::read_only())
            .await
            .map_err(|e| e.to_string())?;
        check_plan(frame.logical_plan()).map_err(|e| e.to_string())?;
        let (batches, _) = query::run_frame(&ctx, frame, std::time::Instant::now())
            .await
            .map_err(|e| e.to_string())?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    #[tokio::test]
    async fn values_sized_by_an_argument_are_bounded_at_planning() {
        let budget = budget(64, 128);
        for sql in [
            "SELECT repeat('a', 1000000000)",
            "SELECT lpad('a', 1000000000)",
            "SELECT rpad('a', 200000, 'b')",
            "SELECT array_repeat(1, 1000000000)",
            "SELECT range(1, 1000000000)",
            "SELECT generate_series(0, 10000000000, 2)",
            // A size that is not a literal could be anything.
            "SELECT repeat('a', CAST(length('abc') * 1000000000 AS INT))",
            "SELECT x FROM (SELECT 1 AS x) WHERE EXISTS (SELECT repeat('a', 1000000000))",
        ] {
            let error = run(&budget, sql).await.expect_err(sql);
            assert!(error.contains(&MAX_GENERATED.to_string()), "{sql}: {error}");
        }
        assert_eq!(
            run(&budget, "SELECT repeat('ab', 3), lpad('x', 5), range(10)").await,
            Ok(1)
        );
        // A table function streams its rows: bounded by time, not refused.
        assert_eq!(
            run(&budget, "SELECT count(*) FROM generate_series(1, 1000000)").await,
            Ok(1)
        );
    }

    #[tokio::test]
    async fn recursive_queries_are_refused() {
        let error = run(
            &budget(64, 128),
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        )
        .await
        .expect_err("recursive");
        assert!(error.to_lowercase().contains("recursive"), "{error}");
    }

    #[tokio::test]
    async fn a_query_cannot_hold_more_than_its_memory() {
        let budget = budget(16, 64);
        // An aggregate that keeps every value, and a result larger than the limit.
        let error = run(
            &budget,
            "SELECT array_agg(value) FROM generate_series(1, 20000000)",
        )
        .await
        .expect_err("aggregate beyond the limit");
        assert!(error.contains("Resources exhausted"), "{error}");
        let error = run(&budget, "SELECT value FROM generate_series(1, 20000000)")
            .await
            .expect_err("result beyond the limit");
        assert!(error.contains("memory limit of 16777216 bytes"), "{error}");
        // Everything was given back: the same budget runs a small query, and holds nothing.
        assert_eq!(run(&budget, "SELECT 1").await, Ok(1));
        assert_eq!(budget.reserved(), 0);
    }

    #[tokio::test]
    async fn queries_together_cannot_hold_more_than_the_total() {
        let budget = budget(48, 64);
        let pool = budget.pool.clone();
        // Another query holds 40 MiB of the 64: this one may take 48 of its own, but the
        // server has only 24 left.
        let other =
            datafusion::execution::memory_pool::MemoryConsumer::new("other query").register(&pool);
        other.try_grow(40 * 1024 * 1024).expect("room");
        let error = run(&budget, "SELECT value FROM generate_series(1, 5000000)")
            .await
            .expect_err("beyond the total");
        assert!(error.contains("query_memory_total_mib"), "{error}");
        drop(other);
        assert_eq!(
            run(&budget, "SELECT value FROM generate_series(1, 5000000)").await,
            Ok(5_000_000)
        );
    }
}
