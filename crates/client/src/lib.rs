//! What every client of a Cairn server shares — the `cairn` commands and the benchmarks alike:
//! [`sign`] (SigV4 signing with credentials from the environment, `~/.cairn/config` profiles
//! ([`profile`]) or a server's administrator file), [`output`] (the AWS CLI's `--output
//! json|table|text` and quiet exit on a closed pipe), and [`http`] helpers.

pub mod http;
pub mod output;
pub mod profile;
pub mod sign;
