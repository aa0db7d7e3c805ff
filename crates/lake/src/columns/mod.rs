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
    new_null_array, ArrayRef, RecordBatch, RecordBatchOptions, StringBuilder, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::de::{DeserializeSeed, IgnoredAny};
use serde::Deserializer as _;
use serde_json::value::RawValue;
use std::sync::Arc;

mod col;
mod names;
mod records;
mod schema;
mod seeds;
pub use col::parse_time;
use col::*;
use names::*;
pub(crate) use records::record_spans;
pub use schema::*;
use seeds::*;

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

#[cfg(test)]
mod tests;
