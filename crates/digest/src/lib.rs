//! CloudTrail digest files as values and bytes, with no I/O (spec §3.2–3.8).
//!
//! * [`document`]: the digest JSON, written in AWS's member order, with every member present
//!   (`null` where AWS writes `null`), and the SHA-256 hashes that chain digests and cover log
//!   files (lowercase hex over uncompressed bytes).
//! * [`signing`]: the exact string-to-sign, RSA-2048 PKCS#1 v1.5 with SHA-256 signatures in
//!   lowercase hex, public keys as PKCS#1 DER (base64 for `ListPublicKeys`) and their MD5
//!   fingerprints.
//!
//! * [`producer`]: one step of a digest chain (build, hash, sign, link).
//! * [`validate`]: the stricter-than-AWS validation of one chain over a store's contents.
//!
//! Scheduling hourly digests for trails, signing-key storage and rotation, and
//! `validate-logs` (issue 4) build on this crate; they are not here yet.

pub mod document;
pub mod producer;
pub mod signing;
pub mod validate;

pub use document::{sha256_hex, DigestDocument, LogFileEntry};
pub use signing::{string_to_sign, PublicKey, SigningError, SigningKey};
