//! Per-minute statistics of a metric.

use serde::{Deserialize, Serialize};

/// Sum, count, minimum and maximum of the values of a period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Sum.
    pub sum: f64,
    /// Number of values (`SampleCount`).
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// A statistic an alarm reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Statistic {
    /// Sum.
    Sum,
    /// Mean.
    Average,
    /// Minimum.
    Minimum,
    /// Maximum.
    Maximum,
    /// Number of values.
    SampleCount,
}

impl Stats {
    /// One value.
    pub fn of(value: f64) -> Self {
        Self {
            sum: value,
            count: 1,
            min: value,
            max: value,
        }
    }

    /// Adds `other` (values of the same period, or of a longer one).
    pub fn merge(&mut self, other: &Stats) {
        self.sum += other.sum;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The statistic's value.
    pub fn get(&self, statistic: Statistic) -> f64 {
        match statistic {
            Statistic::Sum => self.sum,
            Statistic::Average => self.sum / self.count.max(1) as f64,
            Statistic::Minimum => self.min,
            Statistic::Maximum => self.max,
            Statistic::SampleCount => self.count as f64,
        }
    }
}
