//! Alarms (PutMetricAlarm's semantics): a statistic of a metric over periods, compared with a
//! threshold; `datapoints_to_alarm` of the last `evaluation_periods` periods must breach;
//! missing periods are treated as `TreatMissingData` says. States OK, ALARM,
//! INSUFFICIENT_DATA; each change is kept in the history with its reason.

use crate::stats::{Statistic, Stats};
use serde::{Deserialize, Serialize};

/// Comparison with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `>=`.
    GreaterThanOrEqualToThreshold,
    /// `>`.
    GreaterThanThreshold,
    /// `<`.
    LessThanThreshold,
    /// `<=`.
    LessThanOrEqualToThreshold,
}

/// What a period without data counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TreatMissing {
    /// Not evaluated; all missing → INSUFFICIENT_DATA (the default).
    Missing,
    /// Not evaluated; all missing → the state stays.
    Ignore,
    /// Breaching.
    Breaching,
    /// Not breaching.
    NotBreaching,
}

/// Alarm state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// `OK`.
    Ok,
    /// `ALARM`.
    Alarm,
    /// `INSUFFICIENT_DATA`.
    InsufficientData,
}

impl State {
    /// CloudWatch's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// An alarm's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmSpec {
    /// Statistic.
    pub statistic: Statistic,
    /// Period in seconds (a multiple of 60).
    pub period_seconds: u64,
    /// Periods looked at.
    pub evaluation_periods: u32,
    /// Breaching periods among them that set ALARM.
    pub datapoints_to_alarm: u32,
    /// Threshold.
    pub threshold: f64,
    /// Comparison.
    pub comparison: Comparison,
    /// Missing data.
    pub treat_missing: TreatMissing,
}

/// Why an alarm definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AlarmError(pub String);

impl AlarmSpec {
    /// Validates as PutMetricAlarm does.
    pub fn validate(&self) -> Result<(), AlarmError> {
        if self.period_seconds == 0 || !self.period_seconds.is_multiple_of(60) {
            return Err(AlarmError("Period must be a multiple of 60 seconds".into()));
        }
        if self.evaluation_periods == 0 {
            return Err(AlarmError("EvaluationPeriods must be at least 1".into()));
        }
        if self.datapoints_to_alarm == 0 || self.datapoints_to_alarm > self.evaluation_periods {
            return Err(AlarmError(
                "DatapointsToAlarm must be 1 to EvaluationPeriods".into(),
            ));
        }
        if u64::from(self.evaluation_periods) * self.period_seconds > 86_400 * 7 {
            return Err(AlarmError(
                "EvaluationPeriods x Period must be at most 7 days".into(),
            ));
        }
        if !self.threshold.is_finite() {
            return Err(AlarmError("Threshold must be a number".into()));
        }
        Ok(())
    }

    fn breaches(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::GreaterThanOrEqualToThreshold => value >= self.threshold,
            Comparison::GreaterThanThreshold => value > self.threshold,
            Comparison::LessThanThreshold => value < self.threshold,
            Comparison::LessThanOrEqualToThreshold => value <= self.threshold,
        }
    }

    /// Whether more data in a period can only raise the statistic toward the threshold, so a
    /// period still in progress that already breaches will breach when it ends (`Sum`,
    /// `Maximum`, `SampleCount` with `>=` or `>`, values never negative — metric filters with a
    /// non-negative value). Such alarms fire as soon as the datapoint arrives.
    pub fn fires_early(&self) -> bool {
        matches!(
            self.statistic,
            Statistic::Sum | Statistic::Maximum | Statistic::SampleCount
        ) && matches!(
            self.comparison,
            Comparison::GreaterThanOrEqualToThreshold | Comparison::GreaterThanThreshold
        )
    }

    /// The state for the periods ending at `now` (epoch ms): `period_stats(start_ms)` gives the
    /// statistics of the period starting there, if it had data. `current` is kept when data is
    /// missing and missing data is ignored. Also returns the reason. With `early`, a period in
    /// progress that already breaches counts as the newest period (see [`Self::fires_early`]).
    pub fn evaluate(
        &self,
        now: i64,
        current: State,
        early: bool,
        period_stats: impl Fn(i64) -> Option<Stats>,
    ) -> (State, String) {
        let period = self.period_seconds as i64 * 1000;
        let mut last_end = now.div_euclid(period) * period;
        if early && self.fires_early() {
            let in_progress = period_stats(last_end)
                .is_some_and(|s| s.min >= 0.0 && self.breaches(s.get(self.statistic)));
            if in_progress {
                last_end += period;
            }
        }
        let mut breaching = 0u32;
        let mut present = 0u32;
        let mut values = Vec::new();
        for i in 0..self.evaluation_periods as i64 {
            let start = last_end - (i + 1) * period;
            match period_stats(start) {
                Some(stats) => {
                    let value = stats.get(self.statistic);
                    values.push(format!("{value}"));
                    present += 1;
                    breaching += u32::from(self.breaches(value));
                }
                None => match self.treat_missing {
                    TreatMissing::Breaching => {
                        present += 1;
                        breaching += 1;
                    }
                    TreatMissing::NotBreaching => present += 1,
                    TreatMissing::Missing | TreatMissing::Ignore => {}
                },
            }
        }
        let state = if breaching >= self.datapoints_to_alarm {
            State::Alarm
        } else if present == 0 {
            match self.treat_missing {
                TreatMissing::Ignore => current,
                _ => State::InsufficientData,
            }
        } else {
            State::Ok
        };
        let reason = format!(
            "{breaching} of the last {} datapoints breached the threshold ({:?} {}); recent datapoints: [{}]",
            self.evaluation_periods,
            self.comparison,
            self.threshold,
            values.join(", ")
        );
        (state, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const MIN: i64 = 60_000;

    fn cis(treat: TreatMissing) -> AlarmSpec {
        AlarmSpec {
            statistic: Statistic::Sum,
            period_seconds: 300,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            threshold: 1.0,
            comparison: Comparison::GreaterThanOrEqualToThreshold,
            treat_missing: treat,
        }
    }

    #[test]
    fn the_cis_alarm_and_missing_data() {
        let data: BTreeMap<i64, Stats> = [(10 * MIN, Stats::of(1.0))].into();
        let lookup = |start: i64| data.get(&start).copied();
        let alarm = cis(TreatMissing::Missing);
        alarm.validate().expect("valid");
        // The period [10, 15) min ended at 15 min: one event → ALARM.
        assert_eq!(
            alarm.evaluate(16 * MIN, State::Ok, false, lookup).0,
            State::Alarm
        );
        // Before it ended, the previous period has no data.
        assert_eq!(
            alarm.evaluate(12 * MIN, State::Ok, false, lookup).0,
            State::InsufficientData
        );
        assert_eq!(
            cis(TreatMissing::Ignore)
                .evaluate(12 * MIN, State::Ok, false, lookup)
                .0,
            State::Ok
        );
        assert_eq!(
            cis(TreatMissing::NotBreaching)
                .evaluate(22 * MIN, State::Alarm, false, lookup)
                .0,
            State::Ok
        );
        assert_eq!(
            cis(TreatMissing::Breaching)
                .evaluate(22 * MIN, State::Ok, false, lookup)
                .0,
            State::Alarm
        );
    }

    #[test]
    fn m_of_n_and_statistics() {
        let spec = AlarmSpec {
            statistic: Statistic::Average,
            period_seconds: 60,
            evaluation_periods: 3,
            datapoints_to_alarm: 2,
            threshold: 10.0,
            comparison: Comparison::GreaterThanThreshold,
            treat_missing: TreatMissing::Missing,
        };
        let mut two = Stats::of(30.0);
        two.merge(&Stats::of(10.0));
        let data: BTreeMap<i64, Stats> =
            [(0, Stats::of(11.0)), (MIN, two), (2 * MIN, Stats::of(5.0))].into();
        let (state, reason) = spec.evaluate(3 * MIN, State::Ok, false, |s| data.get(&s).copied());
        assert_eq!(state, State::Alarm, "{reason}");
        let data: BTreeMap<i64, Stats> = [(MIN, Stats::of(11.0))].into();
        assert_eq!(
            spec.evaluate(3 * MIN, State::Alarm, false, |s| data.get(&s).copied())
                .0,
            State::Ok
        );
        let bad = AlarmSpec {
            period_seconds: 90,
            ..spec.clone()
        };
        assert!(bad.validate().is_err());
        let bad = AlarmSpec {
            datapoints_to_alarm: 4,
            ..spec
        };
        assert!(bad.validate().is_err());
    }
}
