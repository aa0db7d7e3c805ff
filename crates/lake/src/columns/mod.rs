//! The `events` table's columns (CloudTrail Lake's names) and a builder that parses CloudTrail
//! records straight into Arrow arrays: one pass over each record, only the wanted top-level
//! columns built, everything else skipped without allocating.
//!
//! Parsing is lenient by design: a field of an unexpected JSON type becomes null (text columns
//! keep the JSON text of numbers, booleans, objects) instead of failing the record. A record that
//! is not a JSON object is malformed; a record whose `eventSource` starts with `aws:` is an S3 /
//! SES notification that landed in a tree, not a CloudTrail record ("foreign").

use crate::json_scan::{next_special, same_name, special_bits, Scanner, Stop};
use datafusion::arrow::array::{
    new_null_array, ArrayBuilder, ArrayRef, BooleanBuilder, ListBuilder, RecordBatch,
    RecordBatchOptions, StringBuilder, StructArray, StructBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer as _;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

mod names;
mod records;
mod schema;
use names::*;
pub(crate) use records::record_spans;
pub use schema::*;

/// See [`Col::struct_parts`].
struct StructParts<'c> {
    members: &'static [Node],
    children: &'c mut [Col],
    valid: &'c mut Vec<bool>,
    unread: u64,
    read_lengths: NameLengths,
}

/// The lengths of some names, one bit each (lengths of 63 bytes and more share the last): a
/// member whose name has none of them is none of those names, known without comparing it with
/// any. Queries that read one member of `userIdentity` (its `arn`, say) skip the other nine so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct NameLengths(u64);

impl NameLengths {
    fn of<'n>(names: impl IntoIterator<Item = &'n str>) -> Self {
        Self(names.into_iter().fold(0, |bits, n| bits | Self::bit(n)))
    }

    fn bit(name: &str) -> u64 {
        1 << name.len().min(63)
    }

    /// Whether `name` may be one of the names.
    fn may_be(self, name: &str) -> bool {
        self.0 & Self::bit(name) != 0
    }

    /// The lengths of the names of the `members` of a struct column that are read: all but
    /// those of `unread` (bits, as [`Col::Struct`]'s).
    fn of_read(members: &[Node], unread: u64) -> Self {
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
enum Col {
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
    fn struct_parts(&mut self) -> Option<StructParts<'_>> {
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

    fn new(kind: Kind) -> Self {
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

    fn append_null(&mut self) {
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

    fn finish(&mut self) -> ArrayRef {
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
    fn append_raw(&mut self, kind: Kind, t: &str, escapes: bool) {
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
fn scan_into(col: &mut Col, kind: Kind, s: &mut Scanner<'_>) -> Result<(), Stop> {
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
fn scan_struct(col: &mut Col, s: &mut Scanner<'_>) -> Result<(), Stop> {
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
fn scan_object<'a>(
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
fn struct_member(members: &[Node], seen: u64, key: &str) -> Option<usize> {
    members
        .iter()
        .position(|m| same_name(m.name.as_bytes(), key.as_bytes()))
        .filter(|&i| seen & (1 << i) == 0)
}

/// Ends an object's row of a struct column: the members it did not fill get a null.
fn end_object(children: &mut [Col], valid: &mut Vec<bool>, seen: u64) {
    for (i, c) in children.iter_mut().enumerate() {
        if seen & (1 << i) == 0 {
            c.append_null();
        }
    }
    valid.push(true);
}

/// Pads a struct whose members were partly appended (see [`Col::append_raw`]).
fn pad_struct(col: &mut Col) {
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
    fn len(&self) -> usize {
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
fn scalar_text(t: &str, escapes: bool) -> Option<Cow<'_, str>> {
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

fn append_resources(b: &mut ListBuilder<StructBuilder>, t: &str) {
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

/// A member name, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

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
struct ValueSeed<'c> {
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
struct StructValue<'c>(&'c mut Col);

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

fn fill_struct<'de, A: MapAccess<'de>>(col: &mut Col, map: &mut A) -> Result<(), A::Error> {
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

/// What one file or record added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    /// Records appended.
    pub records: usize,
    /// `aws:*` notification records skipped.
    pub foreign: usize,
    /// Records that are not JSON objects, skipped.
    pub malformed: usize,
}

impl std::ops::AddAssign for Added {
    fn add_assign(&mut self, o: Self) {
        self.records += o.records;
        self.foreign += o.foreign;
        self.malformed += o.malformed;
    }
}

/// Which records' text to parse (see [`EventsBuilder::append_file_where`]).
pub type Admits<'a> = dyn Fn(&[u8]) -> bool + 'a;

/// Builds batches of the table (or of a projection of it) from CloudTrail records.
pub struct EventsBuilder {
    /// Per table column: its builder, if the column is wanted.
    cols: Vec<Option<Col>>,
    schema: SchemaRef,
    rows: usize,
    /// Rows kept from before a file that failed half-way (see [`Self::append_file_where`]).
    carried: Option<RecordBatch>,
    /// The [`special_bits`] of the file being scanned (kept for the next file's).
    specials: Vec<u64>,
    /// For each column, the column whose member followed its member in the last record that
    /// held both ([`RECORD_START`]: the first member): the scan compares a member's name with
    /// it before it looks the name up. Records of one source keep one order.
    follow: [u8; COLUMNS.len() + 1],
    /// The bits of the columns built (those of `cols` that are `Some`).
    built: u64,
}

/// The entry of [`EventsBuilder::follow`] for a record's first member.
const RECORD_START: usize = COLUMNS.len();

impl EventsBuilder {
    /// A builder of the columns `projection` (indexes into [`COLUMNS`]; `None` for all).
    pub fn new(projection: Option<&[usize]>) -> Self {
        let full = schema();
        let wanted: Vec<usize> =
            projection.map_or_else(|| (0..COLUMNS.len()).collect(), <[usize]>::to_vec);
        let cols = COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| wanted.contains(&i).then(|| Col::new(c.kind)))
            .collect();
        let built = wanted.iter().fold(0, |bits, &i| bits | 1 << i);
        let schema = Arc::new(full.project(&wanted).expect("projection within the schema"));
        Self {
            cols,
            schema,
            rows: 0,
            carried: None,
            specials: Vec::new(),
            follow: [0; COLUMNS.len() + 1],
            built,
        }
    }

    /// Builds only the members `read` of the struct column `column` (an index into
    /// [`COLUMNS`]), when the query reads no other: the rest are skipped in the text and given
    /// as nulls. Names that are not members of it are ignored; a column that is not a struct,
    /// or not built, is left as it is.
    pub fn reading_members(mut self, column: usize, read: &[String]) -> Self {
        if let Some(Some(Col::Struct {
            members,
            unread,
            read_lengths,
            ..
        })) = self.cols.get_mut(column)
        {
            *unread = members
                .iter()
                .enumerate()
                .filter(|(_, m)| !read.iter().any(|r| r == m.name))
                .fold(0, |bits, (i, _)| bits | 1 << i);
            *read_lengths = NameLengths::of_read(members, *unread);
        }
        self
    }

    /// A reader of one record into the columns, by `serde_json`.
    fn record_visitor(&mut self) -> RecordVisitor<'_> {
        RecordVisitor {
            cols: &mut self.cols,
            built: self.built,
        }
    }

    /// The schema of the batches this builder makes.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows appended since the last [`Self::finish`].
    pub fn rows(&self) -> usize {
        self.rows + self.carried.as_ref().map_or(0, RecordBatch::num_rows)
    }

    /// Appends one record (a JSON value).
    pub fn append_record(&mut self, raw: &RawValue) -> Added {
        // A `RawValue` is valid JSON, and every member is read leniently: this cannot fail;
        // should it, the row has been completed with nulls.
        self.append_record_text(raw.get().as_bytes())
            .unwrap_or(Added {
                records: 1,
                ..Added::default()
            })
    }

    /// Appends one record from its text, which is parsed (and so checked) here: `Err` if it is
    /// not valid JSON, after completing the row with nulls (the caller cuts the file back).
    fn append_record_text(&mut self, t: &[u8]) -> Result<Added, ()> {
        if t.first() != Some(&b'{') {
            serde_json::from_slice::<IgnoredAny>(t).map_err(|_| ())?;
            return Ok(Added {
                malformed: 1,
                ..Added::default()
            });
        }
        let may_be_foreign = || {
            memchr::memmem::find(t, b"\"aws:").is_some()
                || memchr::memmem::find(t, b"\\u").is_some()
        };
        if may_be_foreign() && is_foreign(t) {
            return Ok(Added {
                foreign: 1,
                ..Added::default()
            });
        }
        // Every caller's text is UTF-8 (a `RawValue`, or a span of a checked file that starts
        // and ends at ASCII structure); should one not be, the record is not valid.
        let text = std::str::from_utf8(t).map_err(|_| ())?;
        let mut de = serde_json::Deserializer::from_str(text);
        let outcome = de
            .deserialize_map(self.record_visitor())
            .and_then(|()| de.end());
        for c in self.cols.iter_mut().flatten() {
            if c.len() <= self.rows {
                c.append_null();
            }
        }
        self.rows += 1;
        outcome.map_err(|_| ())?;
        Ok(Added {
            records: 1,
            ..Added::default()
        })
    }

    /// Appends the records of one log file (`{"Records":[...]}`, uncompressed).
    pub fn append_file(&mut self, json: &[u8]) -> Result<Added, String> {
        self.append_file_where(json, None).map(|(added, _)| added)
    }

    /// Appends the records of one log file whose text `admits` (the others are not parsed;
    /// `None`: every record): what was added, and how many records `admits` left out.
    pub fn append_file_where(
        &mut self,
        json: &[u8],
        admits: Option<&Admits<'_>>,
    ) -> Result<(Added, usize), String> {
        #[derive(serde::Deserialize)]
        struct File<'a> {
            #[serde(rename = "Records", borrow)]
            records: Vec<&'a RawValue>,
        }
        // The whole text is checked once (the parser then reads it as text and needs not check
        // each string it meets).
        let json = simdutf8::basic::from_utf8(json).map_err(|_| {
            // The fast check does not say where; the error names the byte.
            let at = std::str::from_utf8(json)
                .err()
                .map_or(0, |e| e.valid_up_to());
            format!("not a CloudTrail log file: invalid UTF-8 at byte {at}")
        })?;
        // Records are split out first only when each must be looked at as text: when some are
        // chosen by their text, or when the file may hold notifications, which the scan leaves
        // to this path when it meets one.
        if admits.is_none() {
            if let Some(added) = self.append_file_scanned(json) {
                return Ok((added, 0));
            }
            if !may_hold_notifications(json.as_bytes()) {
                return self.append_file_direct(json).map(|added| (added, 0));
            }
        }
        if let Some(spans) = record_spans(json.as_bytes(), &mut self.specials) {
            // Found without parsing; each record taken is parsed (and checked) on its own. If
            // one is not valid JSON, the file's rows are cut off again and the file is read
            // below, which names the fault.
            let before = self.rows;
            let mut added = Added::default();
            let mut left_out = 0;
            let mut broken = false;
            for span in spans {
                let text = &json.as_bytes()[span];
                if !admits.is_none_or(|admits| admits(text)) {
                    left_out += 1;
                    continue;
                }
                match self.append_record_text(text) {
                    Ok(one) => added += one,
                    Err(()) => {
                        broken = true;
                        break;
                    }
                }
            }
            if !broken {
                return Ok((added, left_out));
            }
            self.cut_back(before);
        }
        let file: File<'_> =
            serde_json::from_str(json).map_err(|e| format!("not a CloudTrail log file: {e}"))?;
        let mut added = Added::default();
        let mut left_out = 0;
        for raw in file.records {
            if admits.is_none_or(|admits| admits(raw.get().as_bytes())) {
                added += self.append_record(raw);
            } else {
                left_out += 1;
            }
        }
        Ok((added, left_out))
    }

    /// Appends every record of a file by a checking scan of its text (`json_scan`): the
    /// members of the columns taken are read as [`Self::append_file_direct`] reads them, the
    /// others are skipped without a parser's work. `None`, with nothing appended, when the scan
    /// leaves the file to `serde_json`: it is not valid JSON (`serde_json` then names the
    /// fault), holds what the scan does not judge (an escaped name, deep nesting), or a record
    /// whose `eventSource` may start with `aws:` (a notification, which is left out).
    pub(crate) fn append_file_scanned(&mut self, json: &str) -> Option<Added> {
        let before = self.rows;
        let mut added = Added::default();
        let mut specials = std::mem::take(&mut self.specials);
        special_bits(json.as_bytes(), &mut specials);
        let mut s = Scanner::new(json, &specials);
        let outcome = self.scan_file(&mut s, &mut added);
        self.specials = specials;
        match outcome {
            Ok(()) => Some(added),
            Err(_) => {
                self.complete_row();
                self.cut_back(before);
                None
            }
        }
    }

    /// `{"Records":[...]}`: exactly one `Records` array, other members skipped.
    fn scan_file(&mut self, s: &mut Scanner<'_>, added: &mut Added) -> Result<(), Stop> {
        s.ws();
        let mut found = false;
        if s.peek() != Some(b'{') || !s.enter(b'}')? {
            return Err(Stop::Invalid);
        }
        loop {
            if s.member_name()? == "Records" {
                if std::mem::replace(&mut found, true) {
                    return Err(Stop::Invalid);
                }
                self.scan_records(s, added)?;
            } else {
                s.value()?;
            }
            if !s.more(b'}')? {
                break;
            }
        }
        s.ws();
        if found && s.at_end() {
            Ok(())
        } else {
            Err(Stop::Invalid)
        }
    }

    /// The records array: objects become rows, other values are counted as malformed.
    fn scan_records(&mut self, s: &mut Scanner<'_>, added: &mut Added) -> Result<(), Stop> {
        if s.peek() != Some(b'[') {
            return Err(Stop::Invalid);
        }
        if !s.enter(b']')? {
            return Ok(());
        }
        loop {
            if s.peek() == Some(b'{') {
                self.scan_record(s)?;
                self.rows += 1;
                added.records += 1;
            } else {
                s.value()?;
                added.malformed += 1;
            }
            if !s.more(b']')? {
                return Ok(());
            }
        }
    }

    /// One record (at its `{`) as a row, as [`RecordVisitor`] reads it.
    /// A record that may be an S3 / SES notification stops the scan ([`Stop::Unsure`]).
    fn scan_record(&mut self, s: &mut Scanner<'_>) -> Result<(), Stop> {
        let built = self.built;
        let cols = &mut self.cols;
        let follow = &mut self.follow;
        let mut last = RECORD_START;
        let seen = scan_object(s, 0, |seen, s| {
            // The member that followed the last one in the records before, compared first.
            let guess = usize::from(follow[last]);
            let position =
                if guess < COLUMNS.len() && s.member_named(COLUMNS[guess].name.as_bytes())? {
                    Some(guess)
                } else {
                    let position = column_position(s.member_name()?);
                    if let Some(p) = position {
                        follow[last] = p as u8;
                    }
                    position
                };
            let Some(position) = position else {
                return Ok(None);
            };
            last = position;
            if position == EVENT_SOURCE && may_be_notification_source(s.rest()) {
                return Err(Stop::Unsure);
            }
            if seen & (1 << position) != 0 {
                return Ok(None);
            }
            match cols[position].as_mut() {
                Some(col) => scan_into(col, COLUMNS[position].kind, s).map(|()| Some(position)),
                None => Ok(None), // a column the query does not read
            }
        })?;
        append_nulls(cols, built & !seen);
        Ok(())
    }

    /// Completes the row being appended (its columns padded with nulls), so that the columns
    /// are aligned again after a record that failed half-way.
    fn complete_row(&mut self) {
        let rows = self.rows;
        for c in self.cols.iter_mut().flatten() {
            while c.len() <= rows {
                c.append_null();
            }
        }
        self.rows += 1;
    }

    /// Appends every record of a file in one pass over its text (nothing to search for, no
    /// `aws:` source in it). A file that turns out not to be valid JSON half-way adds nothing:
    /// the rows it added are cut off again.
    pub(crate) fn append_file_direct(&mut self, json: &str) -> Result<Added, String> {
        let before = self.rows;
        let mut added = Added::default();
        let mut de = serde_json::Deserializer::from_str(json);
        let outcome = FileSeed {
            builder: self,
            added: &mut added,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        match outcome {
            Ok(()) => Ok(added),
            Err(e) => {
                // Complete the record that failed, then keep only the rows from before the file.
                self.complete_row();
                self.cut_back(before);
                Err(format!("not a CloudTrail log file: {e}"))
            }
        }
    }

    /// Keeps only the first `before` rows appended since the last [`Self::finish`] (the rows of
    /// a file that turned out broken go).
    fn cut_back(&mut self, before: usize) {
        let batch = self.finish_own();
        let kept = batch.slice(0, before);
        self.carried = Some(match self.carried.take() {
            Some(old) => concat(&self.schema, &old, &kept),
            None => kept,
        });
    }

    fn finish_own(&mut self) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        let arrays: Vec<ArrayRef> = self.cols.iter_mut().flatten().map(Col::finish).collect();
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .expect("columns built to the schema")
    }

    /// The batch of everything appended since the last call.
    pub fn finish(&mut self) -> RecordBatch {
        let batch = self.finish_own();
        match self.carried.take() {
            Some(carried) => concat(&self.schema, &carried, &batch),
            None => batch,
        }
    }
}

fn concat(schema: &SchemaRef, a: &RecordBatch, b: &RecordBatch) -> RecordBatch {
    datafusion::arrow::compute::concat_batches(schema, [a, b]).expect("batches of one schema")
}

/// `{"Records":[...]}` read straight into the builder.
struct FileSeed<'b> {
    builder: &'b mut EventsBuilder,
    added: &'b mut Added,
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

struct RecordsSeed<'b> {
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
struct RecordSeed<'b> {
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
    fn malformed(self) {
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
fn may_hold_notifications(json: &[u8]) -> bool {
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

/// The position of the `eventSource` column.
const EVENT_SOURCE: usize = 3;
/// The position of `userIdentity` in [`COLUMNS`].
pub(crate) const USER_IDENTITY: usize = 1;

/// Whether an `eventSource` value (the text from it on) may start with `aws:`: it does, or it is
/// a string with an escape (which could spell it).
fn may_be_notification_source(value: &[u8]) -> bool {
    value.starts_with(b"\"aws:")
        || value.first() == Some(&b'"')
            && value[1..]
                .iter()
                .take_while(|&&c| c != b'"')
                .any(|&c| c == b'\\')
}

/// Whether the record's top-level `eventSource` starts with `aws:` (S3/SES notifications).
fn is_foreign(t: &[u8]) -> bool {
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
struct RecordVisitor<'c> {
    cols: &'c mut [Option<Col>],
    built: u64,
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
fn append_nulls(cols: &mut [Option<Col>], mut missing: u64) {
    while missing != 0 {
        let i = missing.trailing_zeros() as usize;
        missing &= missing - 1;
        if let Some(c) = cols[i].as_mut() {
            c.append_null();
        }
    }
}

#[cfg(test)]
mod tests;
