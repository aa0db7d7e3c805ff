//! Where each record of a `{"Records":[...]}` file is, by its structure alone (no value
//! parsed): what lets the prefilter rule records out before any is parsed.

use super::*;

/// Where each record of a `{"Records":[...]}` file is, found by following its structure only:
/// strings skipped by the text's [`special_bits`] (computed into `specials`, whose allocation
/// is kept: a shift and a count to each string's end, where a search for the closing quote
/// cost a call per string), brackets counted. No value is parsed (the records a caller takes
/// are parsed then); `None` if the text is not of that shape as far as this scan sees.
pub(crate) fn record_spans(
    json: &[u8],
    specials: &mut Vec<u64>,
) -> Option<Vec<std::ops::Range<usize>>> {
    special_bits(json, specials);
    let specials = &specials[..];
    let ws = |mut i: usize| {
        while json.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let mut i = ws(0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    let mut spans = None;
    i = ws(i + 1);
    if json.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(json, specials, i)?;
        let key = &json[i + 1..key_end - 1];
        i = ws(key_end);
        if json.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        if key == b"Records" {
            if spans.is_some() || json.get(i) != Some(&b'[') {
                return None;
            }
            let mut records = Vec::new();
            i = ws(i + 1);
            if json.get(i) == Some(&b']') {
                i += 1;
            } else {
                loop {
                    let end = skip_value(json, specials, i)?;
                    records.push(i..end);
                    i = ws(end);
                    match json.get(i) {
                        Some(b',') => i = ws(i + 1),
                        Some(b']') => {
                            i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
            }
            spans = Some(records);
        } else {
            i = skip_value(json, specials, i)?;
        }
        i = ws(i);
        match json.get(i) {
            Some(b',') => i = ws(i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    (ws(i + 1) == json.len()).then_some(())?;
    spans
}

/// The end of the string starting at `i` (its opening quote), in a text whose
/// [`special_bits`] are `specials`.
pub(super) fn skip_string(json: &[u8], specials: &[u64], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i = next_special(specials, json.len(), i);
        match *json.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2, // an escape and the character it escapes
            _ => i += 1,     // a control character: judged when the record is parsed
        }
    }
}

/// The end of the JSON value starting at `i` (see [`skip_string`]).
pub(super) fn skip_value(json: &[u8], specials: &[u64], mut i: usize) -> Option<usize> {
    match *json.get(i)? {
        b'"' => skip_string(json, specials, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match *json.get(i)? {
                    b'"' => {
                        i = skip_string(json, specials, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let start = i;
            while json
                .get(i)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace())
            {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}
