//! LookupEvents queries: validation, and the opaque pagination token.

use crate::keys::AttributeKey;
use base64::Engine;
use cairn_model::time::EpochMillis;
use sha2::{Digest, Sha256};

pub use cairn_model::lookup::{
    attribute_value_cost, LookupQuery, QueryError, MAX_ATTRIBUTE_VALUE, MAX_PAGE,
};

/// The position after which the next page starts, and what query it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageToken {
    pub(crate) time: EpochMillis,
    pub(crate) seq: u64,
}

const TOKEN_VERSION: u8 = 2;
/// Bytes of a token: version, query fingerprint, time, sequence, MAC.
const TOKEN_LEN: usize = 1 + 8 + 8 + 8 + MAC_LEN;
const MAC_LEN: usize = 16;

/// The secret NextTokens are authenticated with (kept in the store, so tokens outlive a
/// restart).
pub type TokenKey = [u8; 32];

fn token_mac(key: &TokenKey, body: &[u8]) -> [u8; MAC_LEN] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize().into_bytes()[..MAC_LEN]
        .try_into()
        .expect("16 bytes")
}

/// History's part of a lookup: its token and the rules it checks against the store.
pub(crate) trait QueryExt {
    fn fingerprint(&self) -> [u8; 8];
    fn encode_token(&self, key: &TokenKey, token: PageToken) -> String;
    fn decode_token(&self, key: &TokenKey) -> Result<Option<PageToken>, QueryError>;
    fn resolve(
        &self,
        now: EpochMillis,
        retention_start: EpochMillis,
        key: &TokenKey,
    ) -> Result<(EpochMillis, EpochMillis, usize, Option<PageToken>), QueryError>;
}

impl QueryExt for LookupQuery {
    fn fingerprint(&self) -> [u8; 8] {
        let mut hasher = Sha256::new();
        hasher.update(self.region.as_bytes());
        hasher.update([0, u8::from(self.insights)]);
        if let Some((key, value)) = &self.attribute {
            hasher.update(key.as_str().as_bytes());
            hasher.update([0]);
            hasher.update(value.as_bytes());
        }
        hasher.update([0]);
        hasher.update(self.start_time.unwrap_or(i64::MIN).to_be_bytes());
        hasher.update(self.end_time.unwrap_or(i64::MIN).to_be_bytes());
        let digest = hasher.finalize();
        digest[..8].try_into().expect("8 bytes")
    }

    /// A NextToken for `token`: bound to this query and authenticated with `key`, so that a
    /// changed token is refused rather than followed.
    fn encode_token(&self, key: &TokenKey, token: PageToken) -> String {
        let mut bytes = vec![TOKEN_VERSION];
        bytes.extend_from_slice(&self.fingerprint());
        bytes.extend_from_slice(&token.time.to_be_bytes());
        bytes.extend_from_slice(&token.seq.to_be_bytes());
        let mac = token_mac(key, &bytes);
        bytes.extend_from_slice(&mac);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn decode_token(&self, key: &TokenKey) -> Result<Option<PageToken>, QueryError> {
        let Some(text) = &self.next_token else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| QueryError::InvalidNextToken)?;
        if bytes.len() != TOKEN_LEN
            || bytes[0] != TOKEN_VERSION
            || bytes[1..9] != self.fingerprint()
        {
            return Err(QueryError::InvalidNextToken);
        }
        let (body, mac) = bytes.split_at(TOKEN_LEN - MAC_LEN);
        // Compared whole (no early exit on the first differing byte).
        let expected = token_mac(key, body);
        if expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
        {
            return Err(QueryError::InvalidNextToken);
        }
        Ok(Some(PageToken {
            time: i64::from_be_bytes(bytes[9..17].try_into().expect("8 bytes")),
            seq: u64::from_be_bytes(bytes[17..25].try_into().expect("8 bytes")),
        }))
    }

    /// Checks the rules LookupEvents enforces; returns (start, end, page size, token).
    fn resolve(
        &self,
        now: EpochMillis,
        retention_start: EpochMillis,
        key: &TokenKey,
    ) -> Result<(EpochMillis, EpochMillis, usize, Option<PageToken>), QueryError> {
        let page = self.max_results.unwrap_or(MAX_PAGE);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(QueryError::InvalidMaxResults(page));
        }
        if let (Some(start), Some(end)) = (self.start_time, self.end_time) {
            if start > end {
                return Err(QueryError::InvalidTimeRange { start, end });
            }
        }
        if let Some((key, value)) = &self.attribute {
            let cost = attribute_value_cost(value);
            if value.is_empty() || cost > MAX_ATTRIBUTE_VALUE {
                return Err(QueryError::InvalidLookupAttributes(format!(
                    "{} value must be 1 to {MAX_ATTRIBUTE_VALUE} characters (with '_', ' ', ',' and newline counted twice), got {cost}",
                    key.as_str()
                )));
            }
            if self.insights
                && !matches!(
                    key,
                    AttributeKey::EventId | AttributeKey::EventName | AttributeKey::EventSource
                )
            {
                return Err(QueryError::InvalidLookupAttributes(format!(
                    "{} cannot be used with EventCategory insight; use EventId, EventName or EventSource",
                    key.as_str()
                )));
            }
            if *key == AttributeKey::ReadOnly && value != "true" && value != "false" {
                return Err(QueryError::InvalidLookupAttributes(format!(
                    "ReadOnly value must be \"true\" or \"false\", got {value:?}"
                )));
            }
        }
        let start = self
            .start_time
            .unwrap_or(retention_start)
            .max(retention_start);
        let end = self.end_time.unwrap_or(now);
        Ok((start, end, page, self.decode_token(key)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: TokenKey = [7; 32];

    #[test]
    fn tokens_are_bound_to_their_query_and_authenticated() {
        let query = LookupQuery::region("us-east-1");
        let token = query.encode_token(&KEY, PageToken { time: 5, seq: 9 });
        let with = |token: String| LookupQuery {
            next_token: Some(token),
            ..query.clone()
        };
        assert_eq!(
            with(token.clone()).decode_token(&KEY),
            Ok(Some(PageToken { time: 5, seq: 9 }))
        );
        let other = LookupQuery {
            next_token: Some(token.clone()),
            region: "eu-west-1".into(),
            ..query.clone()
        };
        assert_eq!(other.decode_token(&KEY), Err(QueryError::InvalidNextToken));
        assert_eq!(
            with("!!".into()).decode_token(&KEY),
            Err(QueryError::InvalidNextToken)
        );
        // Another store's key, and every single-character change, are refused.
        assert_eq!(
            with(token.clone()).decode_token(&[8; 32]),
            Err(QueryError::InvalidNextToken)
        );
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for at in 0..token.len() {
            for &c in alphabet {
                let mut changed = token.clone().into_bytes();
                if changed[at] == c {
                    continue;
                }
                changed[at] = c;
                let changed = String::from_utf8(changed).expect("ascii");
                // Base64 without padding can spell the same bytes two ways in its last
                // character; a change that decodes to the same bytes is the same token.
                let same = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&changed)
                    .ok()
                    == base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(&token)
                        .ok();
                if !same {
                    assert_eq!(
                        with(changed.clone()).decode_token(&KEY),
                        Err(QueryError::InvalidNextToken),
                        "{changed}"
                    );
                }
            }
        }
    }

    #[test]
    fn rules() {
        let q = |f: fn(&mut LookupQuery)| {
            let mut query = LookupQuery::region("us-east-1");
            f(&mut query);
            query.resolve(1000, 0, &KEY)
        };
        assert!(matches!(
            q(|q| q.max_results = Some(0)),
            Err(QueryError::InvalidMaxResults(0))
        ));
        assert!(matches!(
            q(|q| q.max_results = Some(51)),
            Err(QueryError::InvalidMaxResults(51))
        ));
        assert!(matches!(
            q(|q| {
                q.start_time = Some(10);
                q.end_time = Some(5)
            }),
            Err(QueryError::InvalidTimeRange { .. })
        ));
        assert!(matches!(
            q(|q| q.attribute = Some((AttributeKey::ReadOnly, "yes".into()))),
            Err(QueryError::InvalidLookupAttributes(_))
        ));
        assert!(matches!(
            q(|q| {
                q.insights = true;
                q.attribute = Some((AttributeKey::Username, "bob".into()))
            }),
            Err(QueryError::InvalidLookupAttributes(_))
        ));
        assert!(matches!(
            q(|q| q.attribute = Some((AttributeKey::EventName, "_".repeat(1001)))),
            Err(QueryError::InvalidLookupAttributes(_))
        ));
        assert_eq!(q(|_| {}), Ok((0, 1000, MAX_PAGE, None)));
    }
}
