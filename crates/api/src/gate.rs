//! Admission: the memory a flood of requests may take, and the threads parsing may take.
//!
//! Every request body is read whole (SigV4 signs its hash), copied for the handler and, on
//! ingest, parsed; so a thousand connections each sending the largest body would hold
//! gigabytes. Before a body is read, its request takes a share of `request_buffer_bytes`
//! (its declared length, or the route limit when it declares none, counted [`WEIGHT`] times:
//! the bytes, their copy and their parsed form; a gzip body at [`GZIP_RATIO`] times its wire
//! size, up to the limit). A request that finds no room waits up to [`ADMISSION_WAIT`] and
//! is then answered 503 with `Retry-After`: nothing is read, nothing is lost, and the
//! producer retries. Parsing and validating event bodies runs on at most as many threads as
//! the machine has cores, so load adds queued requests, not threads.

use crate::error::ApiError;
use axum::http::HeaderMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many times a body's size is counted against the budget.
pub const WEIGHT: u64 = 3;
/// The expansion assumed for a gzip body (CloudTrail JSON compresses about 10 to 20 times).
pub const GZIP_RATIO: u64 = 20;
/// How long a request waits for room before it is answered 503.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(10);

/// The shared budgets.
#[derive(Debug)]
pub struct Gates {
    /// Room for request bodies, in KiB.
    buffer: Arc<Semaphore>,
    buffer_kib: u32,
    /// Threads parsing event bodies.
    parse: Arc<Semaphore>,
    /// How long a request waits for room.
    wait: Duration,
}

/// Room held by one request until its answer is produced.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl Gates {
    /// Budgets for `buffer_bytes` of request bodies and `parsers` parsing threads.
    pub fn new(buffer_bytes: usize, parsers: usize) -> Self {
        let buffer_kib = u32::try_from(buffer_bytes / 1024)
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            buffer: Arc::new(Semaphore::new(buffer_kib as usize)),
            buffer_kib,
            parse: Arc::new(Semaphore::new(parsers.max(1))),
            wait: ADMISSION_WAIT,
        }
    }

    /// The same with another admission wait.
    pub fn with_wait(self, wait: Duration) -> Self {
        Self { wait, ..self }
    }

    /// The cost of a request in KiB of the budget.
    fn cost(&self, headers: &HeaderMap, limit: usize) -> u32 {
        let declared = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let gzip = headers
            .get(axum::http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip"));
        let limit = limit as u64;
        let bytes = match declared {
            Some(n) if gzip => n.saturating_mul(GZIP_RATIO).min(limit),
            Some(n) => n.min(limit),
            None => limit,
        };
        let kib = bytes.saturating_mul(WEIGHT).div_ceil(1024).max(1);
        u32::try_from(kib).unwrap_or(u32::MAX).min(self.buffer_kib)
    }

    /// Waits for room for a request with `headers` whose body may be up to `limit` bytes.
    pub async fn admit(&self, headers: &HeaderMap, limit: usize) -> Result<Admission, ApiError> {
        let cost = self.cost(headers, limit);
        match tokio::time::timeout(
            self.wait,
            self.buffer.clone().acquire_many_owned(cost),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(Admission { _permit: permit }),
            Ok(Err(_)) => Err(ApiError::unavailable("the server is shutting down")),
            Err(_) => Err(ApiError::unavailable(format!(
                "the server holds as many request bodies as its memory budget allows \
                 (request_buffer_mib = {}) and this one waited {:.1} s for room; nothing was read; retry",
                self.buffer_kib / 1024,
                self.wait.as_secs_f64()
            ))),
        }
    }

    /// Runs CPU-bound parsing on a blocking thread, at most one per core at a time.
    pub async fn parse<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .parse
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::internal(format!("validation task failed: {e}")))
    }

    /// KiB of the body budget in use now.
    pub fn buffer_in_use_kib(&self) -> u64 {
        u64::from(self.buffer_kib) - self.buffer.available_permits() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().expect("header"));
        }
        map
    }

    #[test]
    fn a_body_costs_its_declared_size_or_the_limit() {
        let gates = Gates::new(64 << 20, 2);
        assert_eq!(
            gates.cost(&headers(&[("content-length", "10240")]), 1 << 20),
            30
        );
        // No length declared: the limit.
        assert_eq!(gates.cost(&headers(&[]), 1 << 20), 3 * 1024);
        // A lie above the limit is capped (the body reader refuses it anyway).
        assert_eq!(
            gates.cost(&headers(&[("content-length", "99999999999")]), 1 << 20),
            3 * 1024
        );
        // gzip: counted at its expansion, up to the limit.
        assert_eq!(
            gates.cost(
                &headers(&[("content-length", "1024"), ("content-encoding", "gzip")]),
                1 << 20
            ),
            60
        );
        // Never more than the whole budget (else it could never be admitted).
        let small = Gates::new(1 << 20, 2);
        assert_eq!(small.cost(&headers(&[]), 10 << 20), 1024);
    }

    #[tokio::test]
    async fn a_request_finding_no_room_waits_then_is_refused_and_room_returns() {
        let gates = Gates::new(3 * 1024 * 1024, 2).with_wait(Duration::from_millis(50));
        let big = headers(&[("content-length", "1048576")]);
        let held = gates.admit(&big, 4 << 20).await.expect("room for one");
        assert_eq!(gates.buffer_in_use_kib(), 3 * 1024);
        let refused = gates.admit(&big, 4 << 20).await.expect_err("no room");
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            refused.message.contains("request_buffer_mib = 3"),
            "{}",
            refused.message
        );
        drop(held);
        assert_eq!(gates.buffer_in_use_kib(), 0);
        gates.admit(&big, 4 << 20).await.expect("room again");
    }

    #[tokio::test]
    async fn parsing_runs_on_at_most_the_configured_threads() {
        let gates = Arc::new(Gates::new(1 << 20, 2));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (gates, running, peak) = (gates.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    gates
                        .parse(move || {
                            let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                            peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("parsed");
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
