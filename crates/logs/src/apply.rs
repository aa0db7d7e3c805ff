//! The WAL consumer's side: events applied to their groups and metric filters in one
//! transaction with the position, and retention.

use super::*;

impl Logs {
    /// The WAL position applied last.
    pub fn applied_seq(&self) -> Result<u64, LogsError> {
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        let meta = txn.open_table(META).map_err(|e| self.db_error(e))?;
        Ok(meta
            .get("applied_seq")
            .map_err(|e| self.db_error(e))?
            .map_or(0, |v| v.value()))
    }

    /// Applies WAL records `(seq, payload)` ascending: each selected event goes to its groups
    /// and through their metric filters, in one transaction with the new applied position.
    pub fn apply(
        &self,
        records: &[(u64, Vec<u8>)],
        trails: &[cairn_trail::Trail],
    ) -> Result<usize, LogsError> {
        let Some(&(last, _)) = records.last() else {
            return Ok(0);
        };
        let groups = self.groups();
        let compiled = self.compiled.read().expect("logs lock poisoned").clone();
        let txn = self.db.begin_write().map_err(|e| self.db_error(e))?;
        let mut stored = 0;
        {
            let mut events = txn.open_table(EVENTS).map_err(|e| self.db_error(e))?;
            let mut points = txn.open_table(DATAPOINTS).map_err(|e| self.db_error(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.db_error(e))?;
            for (seq, payload) in records {
                let Some(decoded) = cairn_model::payload::decode(payload) else {
                    continue;
                };
                let record = decoded.record;
                for group in &groups {
                    let Some(trail) = trails.iter().find(|t| t.name == group.trail) else {
                        continue;
                    };
                    if !cairn_trail::selects(trail, *seq, record, decoded.fields) {
                        continue;
                    }
                    let Ok(message) = std::str::from_utf8(record) else {
                        continue;
                    };
                    let time = event_time(message).unwrap_or(0);
                    events
                        .insert((group.name.as_str(), time, *seq), record)
                        .map_err(|e| self.db_error(e))?;
                    stored += 1;
                    for filter in compiled.get(&group.name).into_iter().flatten() {
                        let Some(point) = filter.datapoint(message) else {
                            continue;
                        };
                        let key =
                            metric_key(&filter.namespace, &filter.metric_name, &point.dimensions);
                        let minute = time.div_euclid(60_000) * 60_000;
                        let mut stats = Stats::of(point.value);
                        if let Some(old) = points
                            .get((key.as_str(), minute))
                            .map_err(|e| self.db_error(e))?
                        {
                            let (sum, count, min, max) = old.value();
                            stats.merge(&Stats {
                                sum,
                                count,
                                min,
                                max,
                            });
                        }
                        points
                            .insert(
                                (key.as_str(), minute),
                                (stats.sum, stats.count, stats.min, stats.max),
                            )
                            .map_err(|e| self.db_error(e))?;
                    }
                }
            }
            meta.insert("applied_seq", last)
                .map_err(|e| self.db_error(e))?;
        }
        txn.commit().map_err(|e| self.db_error(e))?;
        Ok(stored)
    }

    /// Deletes events older than their group's retention.
    pub fn expire(&self, now: i64) -> Result<usize, LogsError> {
        let groups = self.groups();
        let txn = self.db.begin_write().map_err(|e| self.db_error(e))?;
        let mut removed = 0;
        {
            let mut events = txn.open_table(EVENTS).map_err(|e| self.db_error(e))?;
            for group in &groups {
                let cutoff = now - i64::from(group.retention_days) * 86_400_000;
                removed += self.remove_events(&mut events, &group.name, cutoff)?;
            }
        }
        txn.commit().map_err(|e| self.db_error(e))?;
        Ok(removed)
    }
}

fn event_time(message: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Time<'a> {
        #[serde(borrow, rename = "eventTime")]
        event_time: Option<&'a str>,
    }
    let time: Time<'_> = serde_json::from_str(message).ok()?;
    cairn_model::time::parse_utc(time.event_time?).ok()
}
