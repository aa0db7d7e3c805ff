//! Provenance: who made an event durable in Cairn, kept beside the record, never in it.
//!
//! A producer's record says whatever the producer wrote, including a `userIdentity` and an
//! `eventSource` of someone else. What Cairn knows for certain is which signed request (which
//! principal and access key) ingested it, or that Cairn itself recorded it (its self-audit of
//! its control plane). That is kept out of band of the record's bytes: in the WAL payload,
//! Event history (LookupEvents' `IngestedBy`, and the `IngestedBy` lookup attribute) and the
//! Lake (`metadata.ingestedBy*` columns).

/// Who ingested an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Provenance {
    /// Cairn's own record of a call to its control plane.
    Cairn,
    /// A signed request of a principal.
    Principal {
        /// The principal's ARN.
        arn: String,
        /// The access key that signed.
        access_key_id: String,
    },
    /// Recorded before Cairn kept provenance.
    Unknown,
}

impl Provenance {
    /// The encoding in WAL payloads and history: `c`, or `p<arn>\t<key id>`, or empty.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Cairn => b"c".to_vec(),
            Self::Principal { arn, access_key_id } => {
                let mut out = Vec::with_capacity(2 + arn.len() + access_key_id.len());
                out.push(b'p');
                out.extend_from_slice(arn.as_bytes());
                out.push(b'\t');
                out.extend_from_slice(access_key_id.as_bytes());
                out
            }
            Self::Unknown => Vec::new(),
        }
    }

    /// Reads [`Provenance::encode`]'s output; anything else is `Unknown`.
    pub fn decode(bytes: &[u8]) -> Self {
        match bytes.split_first() {
            Some((b'c', [])) => Self::Cairn,
            Some((b'p', rest)) => {
                let text = String::from_utf8_lossy(rest);
                match text.split_once('\t') {
                    Some((arn, key)) => Self::Principal {
                        arn: arn.to_owned(),
                        access_key_id: key.to_owned(),
                    },
                    None => Self::Unknown,
                }
            }
            _ => Self::Unknown,
        }
    }

    /// `Cairn`, `Principal` or `Unknown`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Cairn => "Cairn",
            Self::Principal { .. } => "Principal",
            Self::Unknown => "Unknown",
        }
    }

    /// The ingesting principal's ARN, if a principal ingested it.
    pub fn arn(&self) -> Option<&str> {
        match self {
            Self::Principal { arn, .. } => Some(arn),
            _ => None,
        }
    }

    /// The access key that signed the ingest, if a principal ingested it.
    pub fn access_key_id(&self) -> Option<&str> {
        match self {
            Self::Principal { access_key_id, .. } => Some(access_key_id),
            _ => None,
        }
    }

    /// The values the `IngestedBy` lookup attribute matches: `cairn`, or the principal's
    /// ARN and its access key id.
    pub fn lookup_values(&self) -> Vec<&str> {
        match self {
            Self::Cairn => vec!["cairn"],
            Self::Principal { arn, access_key_id } => vec![arn, access_key_id],
            Self::Unknown => Vec::new(),
        }
    }

    /// LookupEvents' `IngestedBy`: `{"Type": "Cairn"}` or
    /// `{"Type": "Principal", "Arn": ..., "AccessKeyId": ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Principal { arn, access_key_id } => serde_json::json!({
                "Type": "Principal", "Arn": arn, "AccessKeyId": access_key_id
            }),
            other => serde_json::json!({ "Type": other.kind() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provenance_survives_its_encoding() {
        for p in [
            Provenance::Cairn,
            Provenance::Principal {
                arn: "arn:aws:iam::111122223333:user/writer".into(),
                access_key_id: "AKIAEXAMPLE".into(),
            },
            Provenance::Unknown,
        ] {
            assert_eq!(Provenance::decode(&p.encode()), p);
        }
        assert_eq!(Provenance::decode(b"x"), Provenance::Unknown);
        assert_eq!(Provenance::decode(b"pno-tab"), Provenance::Unknown);
        // "c" with anything after it is not Cairn.
        assert_eq!(Provenance::decode(b"cx"), Provenance::Unknown);
    }
}
