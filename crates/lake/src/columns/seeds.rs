//! The serde path into the builder: a file's `Records` array, each record, and the members the
//! scanner's fast path hands over (nested values, escaped text) read through `serde_json`.

use super::col::*;
use super::names::*;
use super::schema::*;
use super::{Added, EventsBuilder};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A member name, borrowed when it has no escapes.
pub(super) struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// One member value straight into its column: a struct member by member in the same pass over
/// the text (not captured and parsed again at each level of nesting), anything else from its
/// raw text.
pub(super) struct ValueSeed<'c> {
    col: &'c mut Col,
    kind: Kind,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if matches!(self.col, Col::Struct { .. }) {
            d.deserialize_any(StructValue(self.col))
        } else {
            let raw = <&RawValue as serde::Deserialize>::deserialize(d)?;
            self.col.append_raw(self.kind, raw.get(), true);
            Ok(())
        }
    }
}

/// One struct row: an object fills it (members it lacks are null); any other value is a null
/// row. A value that fails half-way leaves the row padded with nulls, the columns aligned.
pub(super) struct StructValue<'c>(pub(super) &'c mut Col);

impl<'de> Visitor<'de> for StructValue<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let outcome = fill_struct(self.0, &mut map);
        if outcome.is_err() {
            pad_struct(self.0);
        }
        outcome
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.0.append_null();
        Ok(())
    }
    scalars_answer!(|this| this.0.append_null());
}

pub(super) fn fill_struct<'de, A: MapAccess<'de>>(
    col: &mut Col,
    map: &mut A,
) -> Result<(), A::Error> {
    let Some(StructParts {
        members,
        children,
        valid,
        unread,
        ..
    }) = col.struct_parts()
    else {
        return Err(serde::de::Error::custom("not a struct column"));
    };
    let mut seen = unread;
    while let Some(key) = map.next_key::<Key<'de>>()? {
        match struct_member(members, seen, &key.0) {
            Some(i) => {
                seen |= 1 << i;
                map.next_value_seed(ValueSeed {
                    col: &mut children[i],
                    kind: members[i].kind,
                })?;
            }
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    end_object(children, valid, seen);
    Ok(())
}

/// `{"Records":[...]}` read straight into the builder.
pub(super) struct FileSeed<'b> {
    pub(super) builder: &'b mut EventsBuilder,
    pub(super) added: &'b mut Added,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a CloudTrail log file")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "Records" {
                if found {
                    return Err(serde::de::Error::duplicate_field("Records"));
                }
                found = true;
                map.next_value_seed(RecordsSeed {
                    builder: &mut *self.builder,
                    added: &mut *self.added,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if found {
            Ok(())
        } else {
            Err(serde::de::Error::missing_field("Records"))
        }
    }
}

pub(super) struct RecordsSeed<'b> {
    builder: &'b mut EventsBuilder,
    added: &'b mut Added,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(()) = seq.next_element_seed(RecordSeed {
            builder: &mut *self.builder,
            added: &mut *self.added,
        })? {}
        Ok(())
    }
}

/// One record: an object becomes a row; anything else is counted as malformed.
pub(super) struct RecordSeed<'b> {
    builder: &'b mut EventsBuilder,
    added: &'b mut Added,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl RecordSeed<'_> {
    pub(super) fn malformed(self) {
        self.added.malformed += 1;
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a CloudTrail record")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.builder.record_visitor().visit_map(map)?;
        self.builder.rows += 1;
        self.added.records += 1;
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.malformed();
        Ok(())
    }
    scalars_answer!(|this| this.malformed());
}

/// Whether a file may hold S3/SES notification records: an `eventSource` member whose value
/// starts with `aws:` (whitespace allowed around the colon), or any `\u` escape (which could
/// spell either). Files that may are read record by record, the others in one pass.
pub(super) fn may_hold_notifications(json: &[u8]) -> bool {
    if memchr::memmem::find(json, b"\\u").is_some() {
        return true;
    }
    memchr::memmem::find_iter(json, b"\"aws:").any(|at| {
        let before = json[..at].trim_ascii_end();
        before
            .strip_suffix(b":")
            .is_some_and(|b| b.trim_ascii_end().ends_with(b"\"eventSource\""))
    })
}

/// Whether an `eventSource` value (the text from it on) may start with `aws:`: it does, or it is
/// a string with an escape (which could spell it).
pub(super) fn may_be_notification_source(value: &[u8]) -> bool {
    value.starts_with(b"\"aws:")
        || value.first() == Some(&b'"')
            && value[1..]
                .iter()
                .take_while(|&&c| c != b'"')
                .any(|&c| c == b'\\')
}

/// Whether the record's top-level `eventSource` starts with `aws:` (S3/SES notifications).
pub(super) fn is_foreign(t: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(rename = "eventSource", borrow, default)]
        source: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Peek<'_>>(t)
        .ok()
        .and_then(|p| p.source)
        .is_some_and(|s| s.starts_with("aws:"))
}

/// One record into the builder's columns by `serde_json` (`built`: the bits of the columns
/// built, [`EventsBuilder::built`]).
pub(super) struct RecordVisitor<'c> {
    pub(super) cols: &'c mut [Option<Col>],
    pub(super) built: u64,
}

impl<'de> Visitor<'de> for RecordVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a CloudTrail record")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = 0u64;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match column_position(&key.0).filter(|&i| (self.built & !seen) >> i & 1 == 1) {
                Some(i) => {
                    seen |= 1 << i;
                    if let Some(col) = self.cols[i].as_mut() {
                        map.next_value_seed(ValueSeed {
                            col,
                            kind: COLUMNS[i].kind,
                        })?;
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        append_nulls(self.cols, self.built & !seen);
        Ok(())
    }
}

/// Appends a null to each column of `missing` (bits of built columns): a visit of those
/// columns only, not of every column of the table.
pub(super) fn append_nulls(cols: &mut [Option<Col>], mut missing: u64) {
    while missing != 0 {
        let i = missing.trailing_zeros() as usize;
        missing &= missing - 1;
        if let Some(c) = cols[i].as_mut() {
            c.append_null();
        }
    }
}
