//! `eventCategory` values.

use std::fmt;
use std::str::FromStr;

/// What kind of event a record is (`eventCategory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventCategory {
    /// Control-plane calls; the default.
    Management,
    /// Data-plane calls (S3 objects, Lambda invocations, ...).
    Data,
    /// VPC-endpoint network activity.
    NetworkActivity,
    /// Insights records.
    Insight,
    /// Integration events received through `PutAuditEvents`.
    ActivityAuditLog,
}

impl EventCategory {
    /// Every category, in the order documented.
    pub const ALL: [EventCategory; 5] = [
        Self::Management,
        Self::Data,
        Self::NetworkActivity,
        Self::Insight,
        Self::ActivityAuditLog,
    ];

    /// The CloudTrail spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Management => "Management",
            Self::Data => "Data",
            Self::NetworkActivity => "NetworkActivity",
            Self::Insight => "Insight",
            Self::ActivityAuditLog => "ActivityAuditLog",
        }
    }

    /// Whether Event history keeps events of this category. Management events, as in
    /// CloudTrail; Insights (returned only when asked for); and integration events, which
    /// CloudTrail keeps only in Lake but Cairn, being the audit trail for non-AWS platforms,
    /// also makes searchable in Event history.
    pub fn in_event_history(self) -> bool {
        matches!(
            self,
            Self::Management | Self::Insight | Self::ActivityAuditLog
        )
    }
}

impl FromStr for EventCategory {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or(())
    }
}

impl fmt::Display for EventCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
