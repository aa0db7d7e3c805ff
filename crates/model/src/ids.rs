//! Newtypes for identifiers that cross crate boundaries.

use std::fmt;
use std::str::FromStr;

/// A 12-digit account id, as AWS writes them (`"210987654321"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

/// Why a string is not an account id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("account id must be exactly 12 decimal digits, got {0:?}")]
pub struct InvalidAccountId(pub String);

impl AccountId {
    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh random account id (first digit non-zero), from 64 random bits.
    pub fn from_random(bits: u64) -> Self {
        let n = 100_000_000_000 + bits % 900_000_000_000;
        Self(n.to_string())
    }
}

impl FromStr for AccountId {
    type Err = InvalidAccountId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidAccountId(s.to_owned()))
        }
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids() {
        assert!("123456789012".parse::<AccountId>().is_ok());
        assert!("12345678901".parse::<AccountId>().is_err());
        assert!("12345678901a".parse::<AccountId>().is_err());
        for bits in [0, 1, u64::MAX, 899_999_999_999] {
            let id = AccountId::from_random(bits);
            assert!(id.as_str().parse::<AccountId>().is_ok(), "{id}");
        }
    }
}
