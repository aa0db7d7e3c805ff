//! Reads: FilterLogEvents over a group's events, GetMetricStatistics over datapoints.

use super::*;

impl Logs {
    /// FilterLogEvents: events of `group` in `[start, end]` (event time, ms) matching
    /// `pattern`, oldest first, at most `limit`, continuing after `after` (a previous answer's
    /// token).
    pub fn filter_events(
        &self,
        group: &str,
        pattern: &str,
        start: i64,
        end: i64,
        limit: usize,
        after: Option<PageToken>,
    ) -> Result<(Vec<FoundEvent>, Option<PageToken>), LogsError> {
        if !self.groups().iter().any(|g| g.name == group) {
            return Err(LogsError::NotFound(group.to_owned()));
        }
        let pattern =
            cairn_filter::parse(pattern).map_err(|e| LogsError::Invalid(e.to_string()))?;
        let limit = limit.clamp(1, MAX_PAGE);
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        let events = txn.open_table(EVENTS).map_err(|e| self.db_error(e))?;
        let from = match after {
            Some((t, s)) => (group, t, s.saturating_add(1)),
            None => (group, start, 0),
        };
        let mut found = Vec::new();
        for item in events
            .range(from..=(group, end, u64::MAX))
            .map_err(|e| self.db_error(e))?
        {
            let (key, value) = item.map_err(|e| self.db_error(e))?;
            let (_, time, seq) = key.value();
            let message = String::from_utf8_lossy(value.value()).into_owned();
            if !pattern.matches(&message) {
                continue;
            }
            if found.len() == limit {
                let last: &FoundEvent = found.last().expect("limit > 0");
                let token = (last.timestamp, last.event_id.parse().unwrap_or(0));
                return Ok((found, Some(token)));
            }
            found.push(FoundEvent {
                log_group_name: group.to_owned(),
                timestamp: time,
                message,
                event_id: seq.to_string(),
            });
        }
        Ok((found, None))
    }

    /// GetMetricStatistics: per period of `period_ms` from `start` to `end`, the merged minute
    /// statistics of the series (periods without data are left out).
    pub fn statistics(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &BTreeMap<String, String>,
        start: i64,
        end: i64,
        period_ms: i64,
    ) -> Result<Vec<(i64, Stats)>, LogsError> {
        if period_ms <= 0 || period_ms % 60_000 != 0 {
            return Err(LogsError::Invalid(
                "Period must be a multiple of 60 seconds".into(),
            ));
        }
        let key = metric_key(namespace, metric, dimensions);
        let txn = self.db.begin_read().map_err(|e| self.db_error(e))?;
        let points = txn.open_table(DATAPOINTS).map_err(|e| self.db_error(e))?;
        let mut out: BTreeMap<i64, Stats> = BTreeMap::new();
        let first = start.div_euclid(60_000) * 60_000;
        for item in points
            .range((key.as_str(), first)..(key.as_str(), end))
            .map_err(|e| self.db_error(e))?
        {
            let (k, v) = item.map_err(|e| self.db_error(e))?;
            let (_, minute) = k.value();
            let (sum, count, min, max) = v.value();
            let bucket = start + (minute - start).div_euclid(period_ms) * period_ms;
            let stats = Stats {
                sum,
                count,
                min,
                max,
            };
            out.entry(bucket)
                .and_modify(|s| s.merge(&stats))
                .or_insert(stats);
        }
        Ok(out.into_iter().collect())
    }
}
