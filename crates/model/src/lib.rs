//! Cairn's event model: pure logic, no I/O.
//!
//! * [`event`] validates a producer's event and prepares the record Cairn stores: the
//!   producer's exact bytes, with any member Cairn adds appended before the closing brace.
//! * [`audit`] does the same for CloudTrail Lake `PutAuditEvents` entries.
//! * [`classify`] holds the documented read-only and data-plane rules.
//! * [`view`] reads the fields Cairn needs back out of a stored record.
//! * [`time`] parses and formats CloudTrail's UTC timestamps; [`clock`] is the injected clock.

pub mod audit;
pub mod category;
pub mod classify;
pub mod clock;
pub mod event;
pub mod fields;
pub mod ids;
pub mod lookup;
pub mod payload;
pub mod principal;
pub mod provenance;
pub mod signing_key;
pub mod time;
pub mod view;

pub use category::EventCategory;
pub use clock::{Clock, ManualClock, SystemClock};
pub use event::{
    prepare_event, PrepareContext, PreparedEvent, RejectKind, Rejection, MAX_EVENT_BYTES,
    MAX_EVENT_DEPTH,
};
pub use ids::AccountId;
pub use view::EventView;

/// An error with its sources (`outer: cause: root cause`), for messages that must say what
/// failed underneath.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
