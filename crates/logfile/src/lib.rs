//! CloudTrail log files as bytes and names, with no I/O.
//!
//! * [`keys`] builds and parses the exact object keys CloudTrail uses (spec §2.1): log files,
//!   organization-trail log files, Insights files, digest and backfill digest files.
//! * [`body`] writes a log file body — `{"Records":[...]}` holding each record's bytes unchanged,
//!   gzip-compressed as exactly one member with a fixed header (spec §2.2) — and reads one back
//!   with a cap on the decompressed size.

pub mod body;
pub mod keys;
