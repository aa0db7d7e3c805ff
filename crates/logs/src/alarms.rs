//! Alarm evaluation: each alarm's metric against its threshold, once a minute.

use super::*;

impl Logs {
    /// Evaluates every alarm at `now`; returns the state changes (persisted).
    pub fn evaluate_alarms(&self, now: i64) -> Result<Vec<Notify>, LogsError> {
        let alarms = self.alarms();
        let mut changes = Vec::new();
        for alarm in &alarms {
            let period = alarm.spec.period_seconds as i64 * 1000;
            let lookup = |start: i64| {
                self.statistics(
                    &alarm.namespace,
                    &alarm.metric,
                    &alarm.dimensions,
                    start,
                    start + period,
                    period,
                )
                .ok()
                .and_then(|p| p.into_iter().next().map(|(_, s)| s))
            };
            let (state, reason) = alarm.spec.evaluate(now, alarm.state, true, lookup);
            if state != alarm.state {
                changes.push((
                    alarm.name.clone(),
                    AlarmChange {
                        time: now,
                        old: alarm.state,
                        new: state,
                        reason,
                    },
                ));
            }
        }
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.modify(|config| {
            let mut out = Vec::new();
            for (name, change) in &changes {
                if let Some(alarm) = config.alarms.iter_mut().find(|a| a.name == *name) {
                    alarm.state = change.new;
                    alarm.reason = change.reason.clone();
                    alarm.history.push(change.clone());
                    if alarm.history.len() > 100 {
                        alarm.history.remove(0);
                    }
                    out.push(Notify {
                        alarm: alarm.clone(),
                        change: change.clone(),
                    });
                }
            }
            Ok(out)
        })
    }
}
