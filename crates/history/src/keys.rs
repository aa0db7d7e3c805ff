//! Key layout of the history store (all integers big-endian so byte order is time order).
//!
//! ```text
//! tables per UTC day D of eventTime:
//!   blocks_D   key: block number (u64)                           value: zstd block of records
//!   post_D     key: attribute | scope | len16 value | newest time | chunk   value: postings
//!   idlist_D   key: chunk (u64)                                  value: id keys (16 bytes each)
//!   rundir_D, run_D_L_ID   the runs of rare values (see `runs`)
//! global:
//!   ids        key: id key   value: day(i32) | block(u32) | slot(u16)  (an event in history:
//!                                   its digest, time and seq are in the block entry)
//!                                 | digest(16)                   (recorded for idempotency only)
//!   idlog      key: chunk    value: the ids indexed since they were last merged into `ids`
//!                                   (see `recent`)
//!   meta       key: name     value: u64   ("applied_seq": last WAL record indexed;
//!                                          "format": 3; "merged_D": chunks a merge left)
//! scope  := kind(1: 0 = management/integration, 1 = insight) | len8 region | region
//! time   := eventTime in ms + 2^63 (u64)
//! id key := the first 16 bytes of SHA-256(eventID)
//! chunk  := the last WAL sequence number of the batch that wrote it, or (a merged chunk)
//!           2^63 | the sequence number of its oldest posting
//! ```
//!
//! The attribute [`ALL`] with an empty value lists every event of a scope (a lookup without
//! an attribute). Blocks are described in [`crate::block`], posting chunks in
//! [`crate::postings`]. The version-1 layout (`events_D`, `index_D`, `ids_D`, `event_ids`:
//! one table entry per event and value, records uncompressed) is read once, by
//! [`crate::migrate`], and dropped.

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

/// The attribute code of "every event of the scope".
pub(crate) const ALL: u8 = 0xff;

/// The postings prefix of every event of a scope.
pub(crate) fn all_prefix(scope: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + scope.len() + 16);
    out.push(ALL);
    out.extend_from_slice(scope);
    out.extend_from_slice(&[0, 0]);
    out
}

/// The `ids` key of an eventID.
pub(crate) fn id_key(event_id: &str) -> [u8; 16] {
    use sha2::Digest;
    sha2::Sha256::digest(event_id.as_bytes())[..16]
        .try_into()
        .expect("16 bytes")
}

pub(crate) fn blocks_table(day: i64) -> String {
    format!("blocks_{day}")
}

pub(crate) fn postings_table(day: i64) -> String {
    format!("post_{day}")
}

pub(crate) fn idlist_table(day: i64) -> String {
    format!("idlist_{day}")
}

/// Version 1: records of the day.
pub(crate) fn events_table(day: i64) -> String {
    format!("events_{day}")
}

/// The day of a per-day table name.
pub(crate) fn day_of_table(name: &str) -> Option<i64> {
    let (_, rest) = name.split_once('_')?;
    // A run's table: run_D_LEVEL_ID.
    let day = match name.strip_prefix("run_") {
        Some(run) => run.split('_').next()?,
        None => rest,
    };
    let prefixes = [
        "blocks_", "post_", "idlist_", "events_", "index_", "ids_", "rundir_", "run_",
    ];
    if prefixes.iter().any(|p| name.starts_with(p)) {
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
        assert_eq!(day_of_table("ids"), None);
        for name in [
            blocks_table(7),
            postings_table(7),
            idlist_table(7),
            "ids_7".into(),
        ] {
            assert_eq!(day_of_table(&name), Some(7));
        }
    }

    #[test]
    fn attribute_names() {
        for key in AttributeKey::ALL {
            assert_eq!(AttributeKey::parse(key.as_str()), Some(key));
        }
        assert_eq!(AttributeKey::parse("eventname"), None);
    }
}
