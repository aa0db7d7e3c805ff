//! Event history lookups as the API asks them and the store answers them (LookupEvents):
//! the query, its validation errors, the page of found events. Pure: the store
//! (`cairn-history`) and the HTTP edge (`cairn-api`) share these without the one depending on
//! the other's storage.

use crate::provenance::Provenance;
use crate::time::EpochMillis;
use crate::EventView;

/// Most results one page may hold (LookupEvents' `MaxResults` limit).
pub const MAX_PAGE: usize = 50;
/// Longest attribute value, counted as LookupEvents counts it.
pub const MAX_ATTRIBUTE_VALUE: usize = 2000;

/// One lookup: a region, at most one attribute, a time range, a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupQuery {
    /// The region whose history is searched.
    pub region: String,
    /// At most one attribute to match exactly.
    pub attribute: Option<(AttributeKey, String)>,
    /// Inclusive lower bound on eventTime (default: the start of retention).
    pub start_time: Option<EpochMillis>,
    /// Inclusive upper bound on eventTime (default: now).
    pub end_time: Option<EpochMillis>,
    /// Search Insights events instead of management events (`EventCategory=insight`).
    pub insights: bool,
    /// Page size, 1 to [`MAX_PAGE`] (default [`MAX_PAGE`]).
    pub max_results: Option<usize>,
    /// The token a previous page returned.
    pub next_token: Option<String>,
}

/// Why a lookup was refused; each maps to the LookupEvents exception of the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `InvalidTimeRangeException`.
    #[error("start time {start} is after end time {end}")]
    InvalidTimeRange {
        /// Start, ms.
        start: EpochMillis,
        /// End, ms.
        end: EpochMillis,
    },
    /// `InvalidMaxResultsException`.
    #[error("max results must be between 1 and {MAX_PAGE}, got {0}")]
    InvalidMaxResults(usize),
    /// `InvalidNextTokenException`.
    #[error("next token is invalid or was issued for a different query")]
    InvalidNextToken,
    /// `InvalidLookupAttributesException`.
    #[error("{0}")]
    InvalidLookupAttributes(String),
}

/// LookupEvents counts `_`, space, `,` and newline twice toward the value limit.
pub fn attribute_value_cost(value: &str) -> usize {
    value
        .chars()
        .map(|c| {
            if matches!(c, '_' | ' ' | ',' | '\n') {
                2
            } else {
                1
            }
        })
        .sum()
}

impl LookupQuery {
    /// A query of `region` with no attribute, default times and page size.
    pub fn region(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            attribute: None,
            start_time: None,
            end_time: None,
            insights: false,
            max_results: None,
            next_token: None,
        }
    }
}

/// Lookup attributes, with their one-byte codes in index keys (ordered by code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttributeKey {
    /// `EventId` (served from `event_ids`, not the index).
    EventId,
    /// `EventName`.
    EventName,
    /// `ReadOnly` (`"true"` / `"false"`).
    ReadOnly,
    /// `Username`.
    Username,
    /// `ResourceType`.
    ResourceType,
    /// `ResourceName`.
    ResourceName,
    /// `EventSource`.
    EventSource,
    /// `AccessKeyId`.
    AccessKeyId,
    /// `IngestedBy` (Cairn's): who ingested the event — `cairn` for Cairn's own records, or
    /// the ingesting principal's ARN or access key id. Not a CloudTrail attribute.
    IngestedBy,
}

impl AttributeKey {
    /// Every key, in LookupEvents' spelling order.
    pub const ALL: [AttributeKey; 9] = [
        Self::EventId,
        Self::EventName,
        Self::ReadOnly,
        Self::Username,
        Self::ResourceType,
        Self::ResourceName,
        Self::EventSource,
        Self::AccessKeyId,
        Self::IngestedBy,
    ];

    /// LookupEvents' spelling (case-sensitive).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventId => "EventId",
            Self::EventName => "EventName",
            Self::ReadOnly => "ReadOnly",
            Self::Username => "Username",
            Self::ResourceType => "ResourceType",
            Self::ResourceName => "ResourceName",
            Self::EventSource => "EventSource",
            Self::AccessKeyId => "AccessKeyId",
            Self::IngestedBy => "IngestedBy",
        }
    }

    /// Parses LookupEvents' spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Its one-byte code in Event history's index keys (the order of [`AttributeKey`]).
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An event found by a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundEvent {
    /// The stored record, byte for byte.
    pub record: Vec<u8>,
    /// Its typed view.
    pub view: EventView,
    /// Who ingested it.
    pub provenance: Provenance,
}

/// One page of lookup results, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupPage {
    /// The events.
    pub events: Vec<FoundEvent>,
    /// Token for the next page, if there are more.
    pub next_token: Option<String>,
}

/// Why a lookup failed, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The request broke a LookupEvents rule (400, the rule's exception).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The store cannot answer now (a full disk, an I/O failure; it recovers by itself): 503.
    #[error("event history is unavailable: {0}")]
    Unavailable(String),
    /// Anything else: 500.
    #[error("event history failed: {0}")]
    Failed(String),
}
