//! Key layout of the history store (all integers big-endian so byte order is time order).
//!
//! ```text
//! tables per UTC day D of eventTime:
//!   events_D   key: scope | time | seq                          value: the record's bytes
//!   index_D    key: attribute | scope | len16 value | time | seq   value: ()
//!   ids_D      key: eventID                                      value: ()   (for expiry)
//! global:
//!   event_ids  key: eventID   value: digest(16) | day(8) | time(8) | seq(8) | in_history(1) | scope
//!   meta       key: name      value: u64          ("applied_seq": last WAL record indexed)
//! scope := kind(1: 0 = management/integration, 1 = insight) | len8 region | region
//! time  := eventTime in ms + 2^63 (u64)
//! ```

use cairn_model::time::EpochMillis;

pub use cairn_model::lookup::AttributeKey;

/// Which part of a region's history an event is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Management and integration events.
    Events = 0,
    /// Insights events.
    Insights = 1,
}

pub(crate) fn time_key(time: EpochMillis) -> u64 {
    (time as u64) ^ (1u64 << 63)
}

pub(crate) fn time_from_key(key: u64) -> EpochMillis {
    (key ^ (1u64 << 63)) as i64
}

pub(crate) fn scope(kind: Kind, region: &str) -> Vec<u8> {
    let region = &region.as_bytes()[..region.len().min(255)];
    let mut out = Vec::with_capacity(2 + region.len());
    out.push(kind as u8);
    out.push(region.len() as u8);
    out.extend_from_slice(region);
    out
}

pub(crate) fn attribute_prefix(key: AttributeKey, scope: &[u8], value: &str) -> Vec<u8> {
    let value = &value.as_bytes()[..value.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(3 + scope.len() + value.len() + 16);
    out.push(key.code());
    out.extend_from_slice(scope);
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Appends `time | seq` to a prefix.
pub(crate) fn with_position(prefix: &[u8], time: EpochMillis, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 16);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&time_key(time).to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// Reads `time | seq` from the end of a key.
pub(crate) fn position_of(key: &[u8]) -> Option<(EpochMillis, u64)> {
    let tail = key.len().checked_sub(16).map(|at| &key[at..])?;
    let time = u64::from_be_bytes(tail[..8].try_into().ok()?);
    let seq = u64::from_be_bytes(tail[8..].try_into().ok()?);
    Some((time_from_key(time), seq))
}

pub(crate) fn events_table(day: i64) -> String {
    format!("events_{day}")
}

pub(crate) fn index_table(day: i64) -> String {
    format!("index_{day}")
}

pub(crate) fn ids_table(day: i64) -> String {
    format!("ids_{day}")
}

/// The day of a per-day table name.
pub(crate) fn day_of_table(name: &str) -> Option<i64> {
    let (_, day) = name.split_once('_')?;
    if name.starts_with("events_") || name.starts_with("index_") || name.starts_with("ids_") {
        day.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_like_times() {
        let times = [-5_000i64, -1, 0, 1, 1_700_000_000_000];
        let keys: Vec<_> = times.iter().map(|&t| time_key(t).to_be_bytes()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for t in times {
            assert_eq!(time_from_key(time_key(t)), t);
        }
    }

    #[test]
    fn positions_round_trip() {
        let key = with_position(
            &attribute_prefix(
                AttributeKey::Username,
                &scope(Kind::Events, "us-east-1"),
                "bob",
            ),
            42,
            7,
        );
        assert_eq!(position_of(&key), Some((42, 7)));
        assert_eq!(day_of_table(&events_table(19_000)), Some(19_000));
        assert_eq!(day_of_table("event_ids"), None);
        assert_eq!(day_of_table("meta"), None);
    }

    #[test]
    fn attribute_names() {
        for key in AttributeKey::ALL {
            assert_eq!(AttributeKey::parse(key.as_str()), Some(key));
        }
        assert_eq!(AttributeKey::parse("eventname"), None);
    }
}
