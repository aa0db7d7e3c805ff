//! Durable storage shared by Cairn's stores.
//!
//! [`Db`] is a [redb](https://docs.rs/redb) database that survives a failed write. redb refuses
//! every operation after an I/O error (`PreviousIo`) until the database is opened again, which
//! turned a full disk into "Event history answers 500 until the process restarts". A `Db` notes
//! I/O failures ([`Db::note`]) and, at the next use, drops the failed handle and opens the file
//! again (redb then repairs from the last durable commit), at most once per
//! [`REOPEN_INTERVAL`], so a store recovers by itself once the disk does.
//!
//! [`file`] writes small files whole or not at all: the one write-temporary, fsync, rename,
//! fsync-directory sequence every durable file of the data directory goes through.

//! The redb part ([`Db`], [`is_io`]) is the `db` feature: crates that only write files (the
//! catalog, identities, keys) do not pull redb in.

pub mod file;

#[cfg(feature = "db")]
mod db;
#[cfg(feature = "db")]
pub use db::{is_io, Db, REOPEN_INTERVAL};
