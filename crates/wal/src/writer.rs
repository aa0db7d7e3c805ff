//! The writer thread: group commit, segment rolling and repair after failures.

use crate::fs::AppendFile;
use crate::record::{self, encode_header, encode_record, HEADER_LEN};
use crate::recovery::OpenError;
use crate::{AppendCallback, AppendError, SeqRange, Shared, WalConfig, WalObserver};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;

pub(crate) struct Request {
    pub(crate) payloads: Vec<Vec<u8>>,
    pub(crate) done: AppendCallback,
}

/// What must happen before the next group can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repair {
    /// A write failed: cut the file back to its durable length.
    Truncate,
    /// An fsync failed: cut back, then continue in a new segment.
    TruncateAndRoll,
    /// Creating a segment failed: try again.
    CreateSegment,
}

pub(crate) struct WriterState {
    shared: Arc<Shared>,
    config: WalConfig,
    observer: Arc<dyn WalObserver>,
    file: Option<Box<dyn AppendFile>>,
    durable_len: u64,
    next_seq: u64,
    repair: Option<Repair>,
    buf: Vec<u8>,
}

impl WriterState {
    pub(crate) fn new(
        shared: Arc<Shared>,
        config: WalConfig,
        observer: Arc<dyn WalObserver>,
        active: Option<(u64, u64)>,
        last_seq: u64,
    ) -> Result<Self, OpenError> {
        let mut state = Self {
            shared,
            config,
            observer,
            file: None,
            durable_len: 0,
            next_seq: last_seq + 1,
            repair: None,
            buf: Vec::new(),
        };
        match active {
            Some((first, len)) => {
                let path = state.shared.dir.join(record::segment_name(first));
                let file = state
                    .shared
                    .fs
                    .open_append(&path, false)
                    .map_err(|source| OpenError::Io { path, source })?;
                state.file = Some(file);
                state.durable_len = len;
            }
            None => state.create_segment().map_err(|e| OpenError::Io {
                path: state.shared.dir.clone(),
                source: std::io::Error::other(e),
            })?,
        }
        Ok(state)
    }

    fn create_segment(&mut self) -> Result<(), String> {
        let first = self.next_seq;
        let path = self.shared.dir.join(record::segment_name(first));
        let fs = self.shared.fs.clone();
        let attempt = || -> std::io::Result<Box<dyn AppendFile>> {
            let mut file = fs.open_append(&path, true)?;
            file.append(&encode_header(first))?;
            file.sync()?;
            fs.sync_dir(&self.shared.dir)?;
            Ok(file)
        };
        match attempt() {
            Ok(file) => {
                self.file = Some(file);
                self.durable_len = HEADER_LEN as u64;
                self.shared
                    .segments
                    .lock()
                    .expect("wal segments lock poisoned")
                    .push(first);
                Ok(())
            }
            Err(e) => {
                // Leave no half-made segment behind: it would block the next attempt.
                let _ = fs.remove(&path);
                Err(format!("creating segment {}: {e}", path.display()))
            }
        }
    }

    fn do_repair(&mut self) -> Result<(), String> {
        let Some(repair) = self.repair else {
            return Ok(());
        };
        if matches!(repair, Repair::Truncate | Repair::TruncateAndRoll) {
            let file = self
                .file
                .as_mut()
                .expect("a segment is open unless creation failed");
            file.truncate(self.durable_len)
                .map_err(|e| format!("cutting back a failed write: {e}"))?;
        }
        let has_records = self.durable_len > HEADER_LEN as u64;
        if repair == Repair::CreateSegment || (repair == Repair::TruncateAndRoll && has_records) {
            self.file = None;
            self.repair = Some(Repair::CreateSegment);
            self.create_segment()?;
        }
        self.repair = None;
        Ok(())
    }

    fn commit(&mut self, group: &[Request]) -> Result<u64, String> {
        self.do_repair()?;
        if self.durable_len >= self.config.segment_bytes && self.durable_len > HEADER_LEN as u64 {
            self.file = None;
            if let Err(e) = self.create_segment() {
                self.repair = Some(Repair::CreateSegment);
                return Err(e);
            }
        }
        self.buf.clear();
        let mut seq = self.next_seq;
        let mut records = 0;
        for request in group {
            for payload in &request.payloads {
                encode_record(&mut self.buf, seq, payload);
                seq += 1;
                records += 1;
            }
        }
        let file = self.file.as_mut().expect("a segment is open after repair");
        if let Err(e) = file.append(&self.buf) {
            self.repair = Some(Repair::Truncate);
            return Err(format!("appending {} bytes: {e}", self.buf.len()));
        }
        let started = Instant::now();
        if let Err(e) = file.sync() {
            self.repair = Some(Repair::TruncateAndRoll);
            return Err(format!("fsync: {e}"));
        }
        let fsync = started.elapsed();
        self.durable_len += self.buf.len() as u64;
        let first = self.next_seq;
        self.next_seq = seq;
        self.shared.durable.store(seq - 1, Ordering::Release);
        self.shared.notify_watermark();
        self.observer
            .committed(seq - 1, records, self.buf.len(), fsync);
        Ok(first)
    }

    pub(crate) fn run(mut self, receiver: mpsc::Receiver<Request>) {
        while let Ok(first) = receiver.recv() {
            let mut bytes: usize = first.payloads.iter().map(Vec::len).sum();
            let mut group = vec![first];
            while bytes < self.config.max_group_bytes {
                match receiver.try_recv() {
                    Ok(request) => {
                        bytes += request.payloads.iter().map(Vec::len).sum::<usize>();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            match self.commit(&group) {
                Ok(mut seq) => {
                    *self
                        .shared
                        .last_error
                        .lock()
                        .expect("wal error lock poisoned") = None;
                    for request in group {
                        let count = request.payloads.len() as u64;
                        let range = SeqRange {
                            first: seq,
                            last: seq + count - 1,
                        };
                        seq += count;
                        (request.done)(Ok(range));
                    }
                }
                Err(reason) => {
                    tracing::error!(error = %reason, "write-ahead log group commit failed");
                    self.observer.failed(&reason);
                    *self
                        .shared
                        .last_error
                        .lock()
                        .expect("wal error lock poisoned") = Some(reason.clone());
                    for request in group {
                        (request.done)(Err(AppendError::Io(reason.clone())));
                    }
                }
            }
        }
    }
}
