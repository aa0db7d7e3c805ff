//! The ingest service: idempotency, WAL append, acknowledgement after fsync.
//!
//! **Idempotency.** An eventID already recorded with the same producer payload is a retry:
//! answered `duplicate`, not recorded again. With a different payload: refused. "Recorded"
//! means: in Event history's id table (which covers every category, for the retention
//! window), or appended to the WAL and not yet indexed (the `pending` map, emptied as the
//! history indexer catches up). Both are checked under one lock, so two concurrent requests
//! cannot both record the same id — except when the first is still waiting for its fsync:
//! then the second is appended too (it must not be acknowledged on the strength of a write
//! that may still fail) and the indexer keeps the first copy only.

use crate::metrics::Metrics;
use crate::space::DiskSpace;
use cairn_api::{ApiError, BoxFuture, Ingest, RecordOutcome};
use cairn_history::HistoryStore;
use cairn_model::event::ProducerDigest;
use cairn_model::payload;
use cairn_model::provenance::Provenance;
use cairn_model::{AccountId, Clock, PreparedEvent, RejectKind};
use cairn_wal::Wal;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy)]
struct Pending {
    digest: ProducerDigest,
    /// WAL sequence number once durable; `None` while in flight.
    seq: Option<u64>,
    request: u64,
}

#[derive(Debug, Default)]
struct PendingIds {
    by_id: HashMap<String, Pending>,
    /// Durable entries by sequence number, for removal once indexed.
    order: VecDeque<(u64, String)>,
    next_request: u64,
}

/// Implements [`Ingest`] over the WAL and the history store.
#[derive(Debug)]
pub struct IngestService {
    wal: Arc<Wal>,
    history: Arc<HistoryStore>,
    pending: Mutex<PendingIds>,
    metrics: Arc<Metrics>,
    account_id: AccountId,
    region: String,
    clock: Arc<dyn Clock>,
    space: Arc<DiskSpace>,
    /// Most events whose ids wait in `pending` before producers are refused (0: no bound).
    max_unindexed: usize,
}

impl IngestService {
    /// Creates the service.
    pub fn new(
        wal: Arc<Wal>,
        history: Arc<HistoryStore>,
        metrics: Arc<Metrics>,
        account_id: AccountId,
        region: String,
        clock: Arc<dyn Clock>,
        space: Arc<DiskSpace>,
    ) -> Self {
        Self {
            wal,
            history,
            pending: Mutex::new(PendingIds::default()),
            metrics,
            account_id,
            region,
            clock,
            space,
            max_unindexed: 0,
        }
    }

    /// Refuses producers' ingest while more than `max` events wait for Event history (their
    /// ids are held in memory until then); 0: no bound.
    pub fn with_max_unindexed(self, max: u64) -> Self {
        Self {
            max_unindexed: usize::try_from(max).unwrap_or(usize::MAX),
            ..self
        }
    }

    /// `Err` with the reason while more events wait for Event history than the bound.
    fn check_unindexed(&self) -> Result<(), String> {
        let waiting = self.pending_len();
        if self.max_unindexed == 0 || waiting <= self.max_unindexed {
            return Ok(());
        }
        Err(format!(
            "Event history is {waiting} events behind, above max_unindexed_events ({}): their eventIDs are held in memory for idempotent retries until it indexes them; ingest resumes by itself as it catches up",
            self.max_unindexed
        ))
    }

    /// Forgets pending ids the history indexer has covered (sequence numbers up to `seq`).
    pub fn indexed_through(&self, seq: u64) {
        let mut pending = self.pending.lock().expect("pending lock poisoned");
        while pending.order.front().is_some_and(|(s, _)| *s <= seq) {
            let (s, id) = pending.order.pop_front().expect("checked non-empty");
            if pending.by_id.get(&id).is_some_and(|p| p.seq == Some(s)) {
                pending.by_id.remove(&id);
            }
        }
    }

    /// Records events whatever the free space (the control plane's own audit records: a
    /// change is refused if its record cannot be made durable, so they may use the reserve).
    pub async fn record_internal(
        &self,
        mut events: Vec<PreparedEvent>,
    ) -> Result<Vec<RecordOutcome>, ApiError> {
        for event in &mut events {
            event.provenance = Provenance::Cairn;
        }
        self.append(events).await
    }

    async fn append(&self, events: Vec<PreparedEvent>) -> Result<Vec<RecordOutcome>, ApiError> {
        let (outcomes, request) = self.classify(&events)?;
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == RecordOutcome::Accepted)
            .map(|(e, _)| {
                payload::encode(
                    &e.digest,
                    &e.fields,
                    &e.provenance,
                    e.view.as_ref(),
                    &e.record,
                )
            })
            .collect();
        let bytes: usize = payloads.iter().map(Vec::len).sum();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.wal.append(
            payloads,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        let result = rx.await.unwrap_or(Err(cairn_wal::AppendError::Closed));
        match result {
            Ok(range) => {
                self.settle(&events, &outcomes, request, Some(range.first));
                for outcome in &outcomes {
                    match outcome {
                        RecordOutcome::Accepted => self.metrics.events_accepted.inc(),
                        RecordOutcome::Duplicate => self.metrics.events_duplicate.inc(),
                        RecordOutcome::Conflict => 0,
                    };
                }
                self.metrics.bytes_accepted.inc_by(bytes as u64);
                Ok(outcomes)
            }
            Err(e) => {
                self.settle(&events, &outcomes, request, None);
                self.metrics.ingest_unavailable.inc();
                Err(ApiError::unavailable(format!(
                    "events were not recorded, retry later: {e}"
                )))
            }
        }
    }

    /// Remembers a durable event the history indexer has not covered yet (at a start whose
    /// catch-up failed), so that a retry of it is still recognised.
    pub fn note_unindexed(&self, seq: u64, event_id: String, digest: ProducerDigest) {
        let mut pending = self.pending.lock().expect("pending lock poisoned");
        pending.by_id.insert(
            event_id.clone(),
            Pending {
                digest,
                seq: Some(seq),
                // No request of this run has this number.
                request: u64::MAX,
            },
        );
        pending.order.push_back((seq, event_id));
    }

    /// Number of ids waiting for the indexer.
    pub fn pending_len(&self) -> usize {
        self.pending
            .lock()
            .expect("pending lock poisoned")
            .by_id
            .len()
    }

    fn classify(&self, events: &[PreparedEvent]) -> Result<(Vec<RecordOutcome>, u64), ApiError> {
        let given: Vec<&str> = events
            .iter()
            .filter(|e| !e.event_id_assigned)
            .map(|e| e.event_id.as_str())
            .collect();
        let mut pending = self.pending.lock().expect("pending lock poisoned");
        let recorded = self.history.recorded_ids_batch(&given).map_err(|e| {
            tracing::error!(error = %e, "reading recorded event ids failed");
            ApiError::unavailable(format!("cannot check event ids for duplicates: {e}"))
        })?;
        let mut recorded = recorded.into_iter();
        let request = pending.next_request;
        pending.next_request += 1;
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let known = if event.event_id_assigned {
                None
            } else {
                let in_history = recorded.next().flatten().map(|r| r.digest);
                pending
                    .by_id
                    .get(&event.event_id)
                    // Durable, or in this very request (which succeeds or fails as one).
                    .map(|p| (p.digest, p.seq.is_some() || p.request == request))
                    .or(in_history.map(|d| (d, true)))
            };
            let outcome = match known {
                Some((digest, _)) if digest != event.digest => RecordOutcome::Conflict,
                Some((_, true)) => RecordOutcome::Duplicate,
                // Same payload still in flight: append again rather than acknowledge early.
                Some((_, false)) => RecordOutcome::Accepted,
                None => {
                    pending.by_id.insert(
                        event.event_id.clone(),
                        Pending {
                            digest: event.digest,
                            seq: None,
                            request,
                        },
                    );
                    RecordOutcome::Accepted
                }
            };
            outcomes.push(outcome);
        }
        Ok((outcomes, request))
    }

    fn settle(
        &self,
        events: &[PreparedEvent],
        outcomes: &[RecordOutcome],
        request: u64,
        first_seq: Option<u64>,
    ) {
        let mut pending = self.pending.lock().expect("pending lock poisoned");
        let mut seq = first_seq;
        for (event, outcome) in events.iter().zip(outcomes) {
            if *outcome != RecordOutcome::Accepted {
                continue;
            }
            let ours = pending
                .by_id
                .get(&event.event_id)
                .is_some_and(|p| p.request == request);
            match seq {
                Some(s) => {
                    if ours {
                        if let Some(p) = pending.by_id.get_mut(&event.event_id) {
                            p.seq = Some(s);
                        }
                        pending.order.push_back((s, event.event_id.clone()));
                    }
                    seq = Some(s + 1);
                }
                None if ours => {
                    pending.by_id.remove(&event.event_id);
                }
                None => {}
            }
        }
    }
}

impl Ingest for IngestService {
    fn account_id(&self) -> &AccountId {
        &self.account_id
    }

    fn region(&self) -> &str {
        &self.region
    }

    fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    fn note_rejected(&self, kind: RejectKind) {
        self.metrics.rejected(kind);
    }

    fn record(
        &self,
        mut events: Vec<PreparedEvent>,
    ) -> BoxFuture<'_, Result<Vec<RecordOutcome>, ApiError>> {
        // Only Cairn's own records (`record_internal`) are in Cairn's name.
        for event in &mut events {
            if event.provenance == Provenance::Cairn {
                event.provenance = Provenance::Unknown;
            }
        }
        Box::pin(async move {
            let backlog = crate::space::index_backlog(&self.wal, &self.metrics);
            if let Err(reason) = self
                .space
                .check(backlog)
                .and_then(|()| self.space.check_wal(&self.wal))
                .and_then(|()| self.check_unindexed())
            {
                self.metrics.ingest_unavailable.inc();
                return Err(ApiError::unavailable(reason));
            }
            self.append(events).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::{prepare_event, ManualClock, PrepareContext};

    fn events(account: &AccountId, ids: std::ops::Range<u32>) -> Vec<PreparedEvent> {
        ids.map(|i| {
            let raw = format!(
                r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","userName":"u"}},"eventTime":"2026-03-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":"GetUser","awsRegion":"us-east-1","eventID":"bound-{i}"}}"#
            );
            let fresh = || "unused".to_owned();
            let ctx = PrepareContext {
                account_id: account,
                fresh_event_id: &fresh,
            };
            prepare_event(raw.as_bytes(), &ctx).expect("valid event")
        })
        .collect()
    }

    /// With Event history stalled (no indexer runs here), producers are refused once more
    /// events wait for it than `max_unindexed_events`, with the reason, and accepted again as
    /// soon as it catches up: the ids held for idempotency stay bounded.
    #[tokio::test]
    async fn events_waiting_for_history_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = Wal::open(
            &dir.path().join("wal"),
            Arc::new(cairn_wal::fs::StdFs),
            cairn_wal::WalConfig::default(),
            Arc::new(cairn_wal::NoopObserver),
        )
        .expect("wal");
        let history = HistoryStore::open(
            &dir.path().join("history.redb"),
            &cairn_history::HistoryConfig::default(),
        )
        .expect("history");
        let account: AccountId = "123456789012".parse().expect("account");
        let ingest = IngestService::new(
            Arc::new(wal),
            Arc::new(history),
            Arc::new(Metrics::new()),
            account.clone(),
            "us-east-1".into(),
            Arc::new(ManualClock::new(0)),
            Arc::new(DiskSpace::new(dir.path().to_owned(), 0)),
        )
        .with_max_unindexed(5);
        ingest
            .record(events(&account, 0..5))
            .await
            .expect("at the bound");
        ingest
            .record(events(&account, 5..6))
            .await
            .expect("the bound is checked before");
        assert_eq!(ingest.pending_len(), 6);
        let refused = ingest
            .record(events(&account, 6..7))
            .await
            .expect_err("beyond the bound");
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            refused.message.contains("6 events behind")
                && refused.message.contains("max_unindexed_events"),
            "{}",
            refused.message
        );
        assert_eq!(
            ingest.pending_len(),
            6,
            "nothing of the refused request is kept"
        );
        // History indexes the first four: room again.
        ingest.indexed_through(4);
        assert_eq!(ingest.pending_len(), 2);
        ingest
            .record(events(&account, 6..7))
            .await
            .expect("caught up");
    }
}
