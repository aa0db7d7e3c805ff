//! Functions to reach inside the JSON text columns (`requestParameters`, `responseElements`,
//! `additionalEventData`, `serviceEventDetails`, `insightDetails`), with the names and
//! semantics saved CloudTrail Lake / Athena queries use:
//!
//! * `json_extract_scalar(json, path)` — the scalar at `path` as text (strings unquoted,
//!   numbers and booleans as written); null for objects, arrays, missing members, bad JSON.
//! * `json_extract(json, path)` — the JSON text at `path` (any type); null when missing.
//!
//! Paths: `$`, `.member`, `["member"]`, `[index]`, e.g. `$.ConsoleLogin`,
//! `$.ipPermissions.items[0].ipRanges`, `$["bucketName"]`.

use crate::json_scan::Scan;
use datafusion::arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::common::{HashMap, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use datafusion::prelude::SessionContext;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.name` or `["name"]`.
    Member(String),
    /// `[n]`.
    Index(usize),
}

/// Parses a JSON path (`$.a.b[0]["c d"]`).
pub fn parse_path(path: &str) -> std::result::Result<Vec<Step>, String> {
    let rest = path
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| format!("JSON path {path:?} must start with $"))?;
    let b = rest.as_bytes();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end] != b'.' && b[end] != b'[' {
                    end += 1;
                }
                if end == start {
                    return Err(format!("JSON path {path:?}: empty member name"));
                }
                steps.push(Step::Member(rest[start..end].to_owned()));
                i = end;
            }
            b'[' => {
                let close = rest[i..]
                    .find(']')
                    .map(|c| c + i)
                    .ok_or_else(|| format!("JSON path {path:?}: unclosed ["))?;
                let inner = rest[i + 1..close].trim();
                if let Some(name) = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                {
                    steps.push(Step::Member(name.to_owned()));
                } else {
                    let n = inner
                        .parse::<usize>()
                        .map_err(|_| format!("JSON path {path:?}: bad subscript [{inner}]"))?;
                    steps.push(Step::Index(n));
                }
                i = close + 1;
            }
            _ => return Err(format!("JSON path {path:?}: unexpected {:?}", b[i] as char)),
        }
    }
    Ok(steps)
}

/// The raw JSON text at `steps`, found without building the document: at each level only the
/// named member (or the indexed element) is kept, everything else is skipped. The whole
/// document is checked by the first step.
fn locate<'a>(json: &'a str, steps: &[Step]) -> Option<&'a str> {
    let Some((first, rest)) = steps.split_first() else {
        return serde_json::from_str::<&RawValue>(json)
            .ok()
            .map(RawValue::get);
    };
    // Cheap refusal: a name that is nowhere in the text is not a member (names with escapes
    // are looked up the slow way).
    let absent = |text: &str, name: &str| !name.contains(['\\', '"']) && !text.contains(name);
    if matches!(first, Step::Member(name) if absent(json, name)) {
        return None;
    }
    let mut current = step(json, first)?;
    for next in rest {
        if matches!(next, Step::Member(name) if absent(current, name)) {
            return None;
        }
        current = step(current, next)?;
    }
    Some(current)
}

/// One step into `json` (the whole text checked): the scan, or `serde_json` where the scan
/// leaves the text to it.
fn step<'a>(json: &'a str, step: &Step) -> Option<&'a str> {
    match crate::json_scan::find(json, step) {
        Scan::Valid(found) => found,
        Scan::Invalid => None,
        Scan::Unsure => step_by_serde(json, step).flatten(),
    }
}

/// One step into `json` by `serde_json`: `None` if the text is not valid JSON, else the raw
/// value at the step, if any (a step that does not fit the value finds nothing).
pub(crate) fn step_by_serde<'a>(json: &'a str, step: &Step) -> Option<Option<&'a str>> {
    let mut de = serde_json::Deserializer::from_str(json);
    let found = step_into(&mut de, step).ok()?;
    de.end().ok()?;
    Some(found.map(RawValue::get))
}

fn step_into<'a>(
    de: &mut serde_json::Deserializer<serde_json::de::StrRead<'a>>,
    step: &Step,
) -> serde_json::Result<Option<&'a RawValue>> {
    match step {
        Step::Member(name) => de.deserialize_any(MemberVisitor(name)),
        Step::Index(n) => de.deserialize_any(IndexVisitor(*n)),
    }
}

struct MemberVisitor<'n>(&'n str);

impl<'de> Visitor<'de> for MemberVisitor<'_> {
    type Value = Option<&'de RawValue>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if found.is_none() && key == self.0 {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    scalars_answer!(|_this| None);
}

struct IndexVisitor(usize);

impl<'de> Visitor<'de> for IndexVisitor {
    type Value = Option<&'de RawValue>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut i = 0;
        loop {
            if i == self.0 {
                match seq.next_element::<&'de RawValue>()? {
                    Some(v) => found = Some(v),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    scalars_answer!(|_this| None);
}

/// `json_extract_scalar` on one value.
pub fn extract_scalar<'a>(json: &'a str, steps: &[Step]) -> Option<Cow<'a, str>> {
    let raw = locate(json, steps)?;
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        if !inner.contains('\\') {
            return Some(Cow::Borrowed(inner));
        }
    }
    match serde_json::from_str::<Value>(raw).ok()? {
        Value::String(s) => Some(Cow::Owned(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// `json_extract` on one value (the JSON text as written, compact input stays compact).
pub fn extract<'a>(json: &'a str, steps: &[Step]) -> Option<Cow<'a, str>> {
    let raw = locate(json, steps)?;
    (raw != "null").then_some(Cow::Borrowed(raw))
}

/// What both functions compute on one value.
type Extractor = for<'a> fn(&'a str, &[Step]) -> Option<Cow<'a, str>>;

fn apply(args: &[ColumnarValue], f: Extractor, name: &str) -> Result<ColumnarValue> {
    let [json, path] = args else {
        return Err(DataFusionError::Plan(format!(
            "{name}(json, path) takes two arguments"
        )));
    };
    let rows = match json {
        ColumnarValue::Array(a) => a.len(),
        ColumnarValue::Scalar(_) => 1,
    };
    let json = json.to_array(rows)?;
    let json = as_string_array(&json)?;
    let mut out = StringBuilder::with_capacity(rows, rows * 8);
    // The usual case: one path for every row, parsed once.
    let constant = match path {
        ColumnarValue::Scalar(ScalarValue::Utf8(p) | ScalarValue::LargeUtf8(p)) => Some(p.clone()),
        _ => None,
    };
    if let Some(p) = constant {
        let steps = match &p {
            Some(p) => Some(parse_path(p).map_err(DataFusionError::Execution)?),
            None => None,
        };
        let mut memo = Memo::default();
        for i in 0..rows {
            match &steps {
                Some(steps) if json.is_valid(i) => {
                    memo.append(&mut out, json.value(i), |text| f(text, steps))
                }
                _ => out.append_null(),
            }
        }
    } else {
        let path = path.to_array(rows)?;
        let path: &StringArray = as_string_array(&path)?;
        let mut cached: Option<(String, Vec<Step>)> = None;
        for i in 0..rows {
            if json.is_null(i) || path.is_null(i) {
                out.append_null();
                continue;
            }
            let p = path.value(i);
            if cached.as_ref().is_none_or(|(text, _)| text != p) {
                let steps = parse_path(p).map_err(DataFusionError::Execution)?;
                cached = Some((p.to_owned(), steps));
            }
            let steps = cached.as_ref().map(|(_, s)| s.as_slice()).unwrap_or(&[]);
            out.append_option(f(json.value(i), steps));
        }
    }
    let array: ArrayRef = Arc::new(out.finish());
    Ok(ColumnarValue::Array(array))
}

/// The answers already given for one batch and one path, by value. JSON text columns repeat
/// their values (a console login's `additionalEventData` takes a dozen forms; a store's pages
/// of such a column are dictionary-encoded), and a value met again is answered without another
/// scan. In a batch whose values seldom repeat the memo turns itself off after
/// [`Memo::PROBE`] lookups, so that unique values pay only those lookups' hashing.
struct Memo<'a> {
    answers: HashMap<&'a str, Option<Cow<'a, str>>>,
    looked: usize,
    hits: usize,
    on: bool,
}

impl Default for Memo<'_> {
    fn default() -> Self {
        Memo {
            answers: HashMap::default(),
            looked: 0,
            hits: 0,
            on: true,
        }
    }
}

impl<'a> Memo<'a> {
    /// Lookups after which a memo whose hits are fewer than one in [`Self::MIN_HIT_SHARE`]
    /// turns itself off.
    const PROBE: usize = 256;
    const MIN_HIT_SHARE: usize = 4;
    /// Distinct values kept (those met later are answered, not kept).
    const CAPACITY: usize = 1024;

    /// Appends to `out` the answer for `text`: the one given before, or `answer(text)`.
    fn append(
        &mut self,
        out: &mut StringBuilder,
        text: &'a str,
        answer: impl FnOnce(&'a str) -> Option<Cow<'a, str>>,
    ) {
        if !self.on {
            return out.append_option(answer(text));
        }
        self.looked += 1;
        if let Some(known) = self.answers.get(text) {
            self.hits += 1;
            return out.append_option(known.as_deref());
        }
        let fresh = answer(text);
        out.append_option(fresh.as_deref());
        if self.looked >= Self::PROBE && self.hits * Self::MIN_HIT_SHARE < self.looked {
            self.on = false;
            self.answers = HashMap::default();
        } else if self.answers.len() < Self::CAPACITY {
            self.answers.insert(text, fresh);
        }
    }
}

fn udf(name: &'static str, f: Extractor) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| apply(args, f, name)),
    )
}

/// Registers the functions on `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(udf("json_extract_scalar", extract_scalar));
    ctx.register_udf(udf("json_extract", extract));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_values() {
        let doc = r#"{"a":{"b":[{"c":"x"},{"c":2}]},"d e":true,"n":null}"#;
        let at = |p: &str| extract_scalar(doc, &parse_path(p).expect("path"));
        assert_eq!(at("$.a.b[0].c").as_deref(), Some("x"));
        assert_eq!(at("$.a.b[1].c").as_deref(), Some("2"));
        assert_eq!(at("$[\"d e\"]").as_deref(), Some("true"));
        assert_eq!(at("$.a"), None);
        assert_eq!(at("$.n"), None);
        assert_eq!(at("$.missing"), None);
        assert_eq!(
            extract(doc, &parse_path("$.a.b[0]").expect("path")).as_deref(),
            Some(r#"{"c":"x"}"#)
        );
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$.a[").is_err());
        assert_eq!(extract_scalar("not json", &[]), None);
        // The whole document is checked, even past the member; escapes are decoded.
        let a = parse_path("$.a").expect("path");
        assert_eq!(extract_scalar(r#"{"a":1} x"#, &a), None);
        assert_eq!(extract_scalar(r#"{"a":1,"b":}"#, &a), None);
        assert_eq!(
            extract_scalar(r#"{"a":"x\"y\u00e9"}"#, &a).as_deref(),
            Some("x\"y\u{e9}")
        );
        assert_eq!(
            extract_scalar(r#"{"a":"plain"}"#, &a).as_deref(),
            Some("plain")
        );
        assert_eq!(extract(r#" {"a":[1, 2]} "#, &a).as_deref(), Some("[1, 2]"));
        assert_eq!(extract(r#"{"b":{"a":1}}"#, &a), None);
    }

    /// Rows answered from the memo are the rows a scan would give: repeated values (valid,
    /// escaped, invalid, without the member, null), then unique ones.
    #[test]
    fn repeated_values_are_answered_as_scanned_ones() {
        let mut texts: Vec<Option<String>> = Vec::new();
        for k in 0..600 {
            texts.push(match k % 5 {
                0 => None,
                1 => Some(r#"{"MFAUsed":"No"}"#.to_owned()),
                2 => Some(r#"{"MFAUsed":"Y\u0065s"}"#.to_owned()),
                3 => Some(r#"{"MFAUsed":"No",}"#.to_owned()),
                _ => Some(format!(r#"{{"other":{}}}"#, k % 3)),
            });
        }
        for k in 0..400 {
            texts.push(Some(format!(
                r#"{{"MFAUsed":"{}","k":{k}}}"#,
                ["No", "Yes"][k % 2]
            )));
        }
        let column: ArrayRef = Arc::new(StringArray::from(texts.clone()));
        let path = ColumnarValue::Scalar(ScalarValue::Utf8(Some("$.MFAUsed".to_owned())));
        let answered = apply(
            &[ColumnarValue::Array(column), path],
            extract_scalar,
            "json_extract_scalar",
        )
        .expect("applied")
        .to_array(texts.len())
        .expect("array");
        let answered = as_string_array(&answered).expect("text");
        let steps = parse_path("$.MFAUsed").expect("path");
        for (i, text) in texts.iter().enumerate() {
            let scanned = text.as_deref().and_then(|t| extract_scalar(t, &steps));
            assert_eq!(
                answered.is_valid(i).then(|| answered.value(i)),
                scanned.as_deref()
            );
        }

        // Unique values: the memo gives up once its hits are too few.
        let unique: Vec<String> = (0..Memo::PROBE + 1)
            .map(|k| format!("{{\"k\":{k}}}"))
            .collect();
        let mut memo = Memo::default();
        let mut out = StringBuilder::new();
        for text in &unique {
            memo.append(&mut out, text, |t| Some(Cow::Borrowed(t)));
        }
        assert!(!memo.on && memo.answers.is_empty());
        // Repeated values keep it on, with one entry per distinct value.
        let mut memo = Memo::default();
        for k in 0..2 * Memo::PROBE {
            memo.append(&mut out, &unique[k % 3], |t| Some(Cow::Borrowed(t)));
        }
        assert!(memo.on && memo.answers.len() == 3 && memo.hits == 2 * Memo::PROBE - 3);
    }
}
