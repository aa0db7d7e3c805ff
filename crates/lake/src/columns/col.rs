//! A column being built ([`Col`]) and the scanner's fast path that fills it from a record's
//! text: top-level members by name, structs member by member, everything unwanted skipped.

use super::schema::*;
use super::seeds::StructValue;
use crate::json_scan::{same_name, Scanner, Stop};
use datafusion::arrow::array::{
    new_null_array, ArrayBuilder, ArrayRef, BooleanBuilder, ListBuilder, StringBuilder,
    StructArray, StructBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

/// See [`Col::struct_parts`].
pub(super) struct StructParts<'c> {
    pub(super) members: &'static [Node],
    pub(super) children: &'c mut [Col],
    pub(super) valid: &'c mut Vec<bool>,
    pub(super) unread: u64,
    pub(super) read_lengths: NameLengths,
}

/// The lengths of some names, one bit each (lengths of 63 bytes and more share the last): a
/// member whose name has none of them is none of those names, known without comparing it with
/// any. Queries that read one member of `userIdentity` (its `arn`, say) skip the other nine so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct NameLengths(u64);

impl NameLengths {
    pub(super) fn of<'n>(names: impl IntoIterator<Item = &'n str>) -> Self {
        Self(names.into_iter().fold(0, |bits, n| bits | Self::bit(n)))
    }

    pub(super) fn bit(name: &str) -> u64 {
        1 << name.len().min(63)
    }

    /// Whether `name` may be one of the names.
    pub(super) fn may_be(self, name: &str) -> bool {
        self.0 & Self::bit(name) != 0
    }

    /// The lengths of the names of the `members` of a struct column that are read: all but
    /// those of `unread` (bits, as [`Col::Struct`]'s).
    pub(super) fn of_read(members: &[Node], unread: u64) -> Self {
        Self::of(
            members
                .iter()
                .enumerate()
                .filter(|(i, _)| unread & (1 << i) == 0)
                .map(|(_, m)| m.name),
        )
    }
}

/// One column under construction.
pub(super) enum Col {
    Text(StringBuilder),
    Bool(BooleanBuilder),
    Time(TimestampMillisecondBuilder),
    Struct {
        members: &'static [Node],
        children: Vec<Col>,
        valid: Vec<bool>,
        /// Bits of the members not built (the query reads none of them): they are skipped
        /// like unknown members, and the column gives them as nulls.
        unread: u64,
        /// The lengths of the names of the members built: [`NameLengths::of_read`] of
        /// `members` and `unread`, kept beside them for the scan of each row.
        read_lengths: NameLengths,
    },
    Resources(ListBuilder<StructBuilder>),
}

impl Col {
    /// A struct column's parts: its members, their columns, its rows' validity, the bits
    /// of the members not built and the lengths of the others' names.
    pub(super) fn struct_parts(&mut self) -> Option<StructParts<'_>> {
        match self {
            Col::Struct {
                members,
                children,
                valid,
                unread,
                read_lengths,
            } => Some(StructParts {
                members,
                children,
                valid,
                unread: *unread,
                read_lengths: *read_lengths,
            }),
            _ => None,
        }
    }

    pub(super) fn new(kind: Kind) -> Self {
        match kind {
            Kind::Text | Kind::Json => Col::Text(StringBuilder::new()),
            Kind::Bool => Col::Bool(BooleanBuilder::new()),
            Kind::Time => Col::Time(TimestampMillisecondBuilder::new().with_timezone("UTC")),
            Kind::Struct(members) => Col::Struct {
                members,
                children: members.iter().map(|m| Col::new(m.kind)).collect(),
                valid: Vec::new(),
                unread: 0,
                read_lengths: NameLengths::of_read(members, 0),
            },
            Kind::Resources => Col::Resources(
                ListBuilder::new(StructBuilder::from_fields(resource_fields(), 0)).with_field(
                    Arc::new(Field::new(
                        "item",
                        DataType::Struct(resource_fields()),
                        true,
                    )),
                ),
            ),
        }
    }

    pub(super) fn append_null(&mut self) {
        match self {
            Col::Text(b) => b.append_null(),
            Col::Bool(b) => b.append_null(),
            Col::Time(b) => b.append_null(),
            Col::Struct {
                children,
                valid,
                unread,
                ..
            } => {
                for (i, c) in children.iter_mut().enumerate() {
                    if *unread & (1 << i) == 0 {
                        c.append_null();
                    }
                }
                valid.push(false);
            }
            Col::Resources(b) => b.append_null(),
        }
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Text(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Time(b) => Arc::new(b.finish()),
            Col::Struct {
                members,
                children,
                valid,
                unread,
                ..
            } => {
                let fields = struct_fields(members);
                let rows = valid.len();
                let arrays = children
                    .iter_mut()
                    .zip(fields.iter())
                    .enumerate()
                    .map(|(i, (c, field))| {
                        if *unread & (1 << i) == 0 {
                            c.finish()
                        } else {
                            new_null_array(field.data_type(), rows)
                        }
                    })
                    .collect();
                let nulls = NullBuffer::from(std::mem::take(valid));
                Arc::new(StructArray::new(fields, arrays, Some(nulls)))
            }
            Col::Resources(b) => Arc::new(b.finish()),
        }
    }

    /// Appends the value `t` (the text of one valid JSON value) for a column of `kind`.
    /// `escapes`: whether a string `t` may hold an escape (`false` when a scan saw none).
    pub(super) fn append_raw(&mut self, kind: Kind, t: &str, escapes: bool) {
        match (self, kind) {
            (Col::Text(b), Kind::Json) => {
                if t == "null" {
                    b.append_null()
                } else {
                    b.append_value(t)
                }
            }
            (Col::Text(b), _) => match scalar_text(t, escapes) {
                Some(s) => b.append_value(s),
                None => b.append_null(),
            },
            (Col::Bool(b), _) => b.append_option(match t {
                "true" | "\"true\"" => Some(true),
                "false" | "\"false\"" => Some(false),
                _ => None,
            }),
            (Col::Time(b), _) => {
                b.append_option(scalar_text(t, escapes).and_then(|s| parse_time(&s)))
            }
            (col @ Col::Struct { .. }, _) => {
                let mut de = serde_json::Deserializer::from_str(t);
                // A failure (unreachable for valid JSON: every member is read leniently) leaves
                // the struct padded, its columns aligned.
                let _ = serde::Deserializer::deserialize_any(&mut de, StructValue(col));
            }
            (Col::Resources(b), _) => append_resources(b, t),
        }
    }
}

/// Appends the value at the scan (no whitespace before it) to `col`, a column of `kind`: an
/// object for a struct column member by member, anything else as its text
/// ([`Col::append_raw`]). On an error the column holds one more row (padded, as
/// [`StructValue`] leaves it), or none if nothing was appended.
pub(super) fn scan_into(col: &mut Col, kind: Kind, s: &mut Scanner<'_>) -> Result<(), Stop> {
    if matches!(col, Col::Struct { .. }) && s.peek() == Some(b'{') {
        let outcome = scan_struct(col, s);
        if outcome.is_err() {
            pad_struct(col);
        }
        return outcome;
    }
    let start = s.pos();
    let escapes = s.value_escapes()?;
    col.append_raw(kind, s.since(start), escapes);
    Ok(())
}

/// An object (at its `{`) into a struct column, as [`fill_struct`] reads it: the first of
/// each member taken, unknown members skipped, missing ones null.
pub(super) fn scan_struct(col: &mut Col, s: &mut Scanner<'_>) -> Result<(), Stop> {
    let Some(StructParts {
        members,
        children,
        valid,
        unread,
        read_lengths,
    }) = col.struct_parts()
    else {
        return Err(Stop::Invalid);
    };
    // The members not built count as taken: skipped, and not given a null.
    let seen = scan_object(s, unread, |seen, s| {
        let name = s.member_name()?;
        if !read_lengths.may_be(name) {
            return Ok(None);
        }
        match struct_member(members, seen, name) {
            Some(i) => scan_into(&mut children[i], members[i].kind, s).map(|()| Some(i)),
            None => Ok(None),
        }
    })?;
    end_object(children, valid, seen);
    Ok(())
}

/// The members of an object (at its `{`), left after its `}`: `take` reads a member's name
/// (and the value, if it wants the member: given the bits of the members it took so far) and
/// answers which member it took; the values of the others are skipped. The bits of the
/// members taken, and of `seen`, those counted as taken before.
pub(super) fn scan_object<'a>(
    s: &mut Scanner<'a>,
    mut seen: u64,
    mut take: impl FnMut(u64, &mut Scanner<'a>) -> Result<Option<usize>, Stop>,
) -> Result<u64, Stop> {
    if s.enter(b'}')? {
        loop {
            match take(seen, s)? {
                Some(i) => seen |= 1 << i,
                None => s.value()?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    Ok(seen)
}

/// The member of a struct column that an object's member named `key` fills: the first time
/// the object names it (`seen`: bits of the members already filled).
pub(super) fn struct_member(members: &[Node], seen: u64, key: &str) -> Option<usize> {
    members
        .iter()
        .position(|m| same_name(m.name.as_bytes(), key.as_bytes()))
        .filter(|&i| seen & (1 << i) == 0)
}

/// Ends an object's row of a struct column: the members it did not fill get a null.
pub(super) fn end_object(children: &mut [Col], valid: &mut Vec<bool>, seen: u64) {
    for (i, c) in children.iter_mut().enumerate() {
        if seen & (1 << i) == 0 {
            c.append_null();
        }
    }
    valid.push(true);
}

/// Pads a struct whose members were partly appended (see [`Col::append_raw`]).
pub(super) fn pad_struct(col: &mut Col) {
    if let Some(StructParts {
        children,
        valid,
        unread,
        ..
    }) = col.struct_parts()
    {
        let rows = valid.len() + 1;
        for (i, c) in children.iter_mut().enumerate() {
            while unread & (1 << i) == 0 && c.len() < rows {
                c.append_null();
            }
        }
        valid.push(true);
    }
}

impl Col {
    pub(super) fn len(&self) -> usize {
        match self {
            Col::Text(b) => b.len(),
            Col::Bool(b) => b.len(),
            Col::Time(b) => b.len(),
            Col::Struct { valid, .. } => valid.len(),
            Col::Resources(b) => b.len(),
        }
    }
}

/// An event time: ISO-8601 UTC as CloudTrail writes it, or the `YYYY-MM-DD HH:MM:SS[.fff]` form
/// (UTC) of Lake and Athena exports.
pub fn parse_time(s: &str) -> Option<i64> {
    if s.len() >= 19 && s.as_bytes()[10] == b' ' {
        let mut iso = s.replacen(' ', "T", 1);
        if !iso.ends_with('Z') && !iso[19..].contains(['+', '-']) {
            iso.push('Z');
        }
        return cairn_model::time::parse_utc(&iso).ok();
    }
    cairn_model::time::parse_utc(s).ok()
}

/// The text of a scalar JSON value: strings unescaped, other values as written, `null` as none.
pub(super) fn scalar_text(t: &str, escapes: bool) -> Option<Cow<'_, str>> {
    if t == "null" {
        None
    } else if let Some(inner) = t.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        if escapes && inner.contains('\\') {
            serde_json::from_str::<String>(t).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    } else {
        Some(Cow::Borrowed(t))
    }
}

pub(super) fn append_resources(b: &mut ListBuilder<StructBuilder>, t: &str) {
    #[derive(serde::Deserialize)]
    struct Resource<'a> {
        #[serde(rename = "accountId", borrow, default)]
        account: Option<&'a RawValue>,
        #[serde(rename = "type", borrow, default)]
        kind: Option<&'a RawValue>,
        #[serde(rename = "ARN", borrow, default)]
        arn: Option<&'a RawValue>,
    }
    let Ok(list) = serde_json::from_str::<Vec<Resource<'_>>>(t) else {
        b.append_null();
        return;
    };
    let values = b.values();
    for r in &list {
        for (i, v) in [r.account, r.kind, r.arn].into_iter().enumerate() {
            let s = v.and_then(|v| scalar_text(v.get(), true));
            if let Some(f) = values.field_builder::<StringBuilder>(i) {
                f.append_option(s);
            }
        }
        values.append(true);
    }
    b.append(true);
}
