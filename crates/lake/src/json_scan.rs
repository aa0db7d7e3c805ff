//! One step of a JSON path taken by a scan of the text that checks it as it goes and builds
//! nothing: the JSON functions' usual work (one member of a small object per row) without a
//! parser's setup, key copies and visitor calls.
//!
//! The scan accepts exactly what the `serde_json` path ([`crate::udf::step_by_serde`]) accepts
//! where it answers; what it is not sure to
//! judge the same way (a key with an escape, nesting deeper than [`MAX_DEPTH`]) it leaves to
//! `serde_json` by answering [`Scan::Unsure`]. The tests compare both on every case.

use crate::udf::Step;
use std::cell::Cell;

/// Nesting the scan follows (`serde_json` refuses at 128); deeper text is left to `serde_json`.
const MAX_DEPTH: usize = 100;

/// What a scan found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan<'a> {
    /// The text is valid JSON; the value at the step, if it has one.
    Valid(Option<&'a str>),
    /// The text is not valid JSON.
    Invalid,
    /// Not judged here (see the module documentation).
    Unsure,
}

/// Why a scan stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The text is not valid JSON.
    Invalid,
    /// Not judged here.
    Unsure,
}

type Step1<T> = Result<T, Stop>;

/// Takes `step` into `json` (the whole text checked): the member of an object or the element
/// of an array, as raw text. A step that does not fit the value (a member of an array, say)
/// finds nothing, whether or not the text is valid, as with `serde_json`.
pub(crate) fn find<'a>(json: &'a str, step: &Step) -> Scan<'a> {
    thread_local! {
        /// The JSON functions' [`special_bits`], kept from row to row for their allocation.
        static SPECIALS: Cell<Vec<u64>> = const { Cell::new(Vec::new()) };
    }
    let mut specials = SPECIALS.take();
    special_bits(json.as_bytes(), &mut specials);
    let found = step_span(&mut Scanner::new(json, &specials), step);
    SPECIALS.set(specials);
    match found {
        // The spans start and end at ASCII structure, so they are on character boundaries.
        Ok(span) => Scan::Valid(span.map(|(start, end)| &json[start..end])),
        Err(Stop::Invalid) => Scan::Invalid,
        Err(Stop::Unsure) => Scan::Unsure,
    }
}

/// The span of `step` in the scan's whole text (see [`find`]).
fn step_span(s: &mut Scanner<'_>, step: &Step) -> Step1<Option<(usize, usize)>> {
    s.ws();
    let found = match (s.peek(), step) {
        (Some(b'{'), Step::Member(name)) => s.object(Some(name.as_bytes()))?,
        (Some(b'['), Step::Index(n)) => s.array(Some(*n))?,
        _ => return Ok(None),
    };
    s.ws();
    if s.at_end() {
        Ok(found)
    } else {
        Err(Stop::Invalid)
    }
}

/// A checking scan over one text, for callers that walk a shape of their own (a log file's
/// records) and skip or take the values inside it.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
    /// [`special_bits`] of the text: where its strings end.
    specials: &'a [u64],
}

impl<'a> Scanner<'a> {
    /// A scan of `text`, whose [`special_bits`] are `specials`.
    pub(crate) fn new(text: &'a str, specials: &'a [u64]) -> Self {
        debug_assert_eq!(specials.len(), text.len().div_ceil(64) + 1);
        Scanner {
            text,
            b: text.as_bytes(),
            i: 0,
            depth: 0,
            specials,
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(crate) fn pos(&self) -> usize {
        self.i
    }

    pub(crate) fn at_end(&self) -> bool {
        self.i == self.b.len()
    }

    /// The text from here on, unchecked.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.b[self.i..]
    }

    /// The text from `start` (a position at ASCII structure) to here.
    pub(crate) fn since(&self, start: usize) -> &'a str {
        &self.text[start..self.i]
    }

    /// A member name (at its `"`), as written: [`Stop::Unsure`] if it holds an escape (it is
    /// compared decoded elsewhere).
    pub(crate) fn key(&mut self) -> Step1<&'a str> {
        if self.peek() != Some(b'"') {
            return Err(Stop::Invalid);
        }
        let start = self.i + 1;
        if self.string()? {
            return Err(Stop::Unsure);
        }
        Ok(&self.text[start..self.i - 1])
    }

    /// A member's name and its colon (at the name's `"`; see [`Self::key`]), leaving the
    /// scan at the value.
    pub(crate) fn member_name(&mut self) -> Step1<&'a str> {
        let name = self.key()?;
        self.ws();
        self.expect(b':')?;
        self.ws();
        Ok(name)
    }

    /// A member named `name` (at the name's `"`), and its colon, if that is the member here:
    /// `false` leaves the scan where it was. Cheaper than [`Self::member_name`] and a lookup
    /// when the name can be guessed (a `name` has no character that needs an escape).
    pub(crate) fn member_named(&mut self, name: &[u8]) -> Step1<bool> {
        let start = self.i + 1;
        let end = start + name.len();
        if self.b.get(end) != Some(&b'"')
            || self.peek() != Some(b'"')
            || !same_name(&self.b[start..end], name)
        {
            return Ok(false);
        }
        self.i = end + 1;
        self.ws();
        self.expect(b':')?;
        self.ws();
        Ok(true)
    }

    /// After a member or an element of a container that `close` ends: `true` if another
    /// follows (the scan then at it), `false` once past `close` (out of the container).
    pub(crate) fn more(&mut self, close: u8) -> Step1<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                self.ws();
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                self.depth -= 1;
                Ok(false)
            }
            _ => Err(Stop::Invalid),
        }
    }

    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    pub(crate) fn expect(&mut self, c: u8) -> Step1<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Stop::Invalid)
        }
    }

    /// Into a container (at its opening bracket) that `close` ends: `false` if it is empty
    /// (the scan then past it). [`Self::more`] leaves it.
    pub(crate) fn enter(&mut self, close: u8) -> Step1<bool> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Stop::Unsure);
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            self.depth -= 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// An object (at its `{`): the span of the first member named `wanted`.
    fn object(&mut self, wanted: Option<&[u8]>) -> Step1<Option<(usize, usize)>> {
        if !self.enter(b'}')? {
            return Ok(None);
        }
        let mut found = None;
        loop {
            if self.peek() != Some(b'"') {
                return Err(Stop::Invalid);
            }
            let key_start = self.i + 1;
            if self.string()? && wanted.is_some() {
                // An escaped key is compared decoded by `serde_json`.
                return Err(Stop::Unsure);
            }
            let key = &self.b[key_start..self.i - 1];
            self.ws();
            self.expect(b':')?;
            self.ws();
            let start = self.i;
            self.value()?;
            if found.is_none() && wanted == Some(key) {
                found = Some((start, self.i));
            }
            if !self.more(b'}')? {
                return Ok(found);
            }
        }
    }

    /// An array (at its `[`): the span of element `wanted`.
    fn array(&mut self, wanted: Option<usize>) -> Step1<Option<(usize, usize)>> {
        if !self.enter(b']')? {
            return Ok(None);
        }
        let mut found = None;
        let mut n = 0;
        loop {
            let start = self.i;
            self.value()?;
            if wanted == Some(n) {
                found = Some((start, self.i));
            }
            n += 1;
            if !self.more(b']')? {
                return Ok(found);
            }
        }
    }

    /// Any value, as [`Self::value`]: whether it is a string holding an escape.
    pub(crate) fn value_escapes(&mut self) -> Step1<bool> {
        if self.peek() == Some(b'"') {
            self.string()
        } else {
            self.value().map(|()| false)
        }
    }

    /// Any value, starting here (no whitespace before it).
    pub(crate) fn value(&mut self) -> Step1<()> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => self.object(None).map(|_| ()),
            Some(b'[') => self.array(None).map(|_| ()),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'n') => self.word(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(Stop::Invalid),
        }
    }

    fn word(&mut self, w: &[u8]) -> Step1<()> {
        if self.b[self.i..].starts_with(w) {
            self.i += w.len();
            Ok(())
        } else {
            Err(Stop::Invalid)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Step1<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(Stop::Invalid);
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Stop::Invalid),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Stop::Invalid);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Stop::Invalid);
            }
        }
        Ok(())
    }

    /// A string (at its `"`), left after its closing quote: whether it holds an escape.
    #[inline(always)]
    fn string(&mut self) -> Step1<bool> {
        self.i += 1;
        let mut escaped = false;
        loop {
            self.i = next_special(self.specials, self.b.len(), self.i);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    match self.b.get(self.i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 2..self.i + 6).ok_or(Stop::Invalid)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Stop::Invalid);
                            }
                            self.i += 6;
                        }
                        _ => return Err(Stop::Invalid),
                    }
                }
                _ => return Err(Stop::Invalid),
            }
        }
    }
}

/// The position of the first quote, backslash or control character at or after `from` in a
/// text of `len` bytes whose [`special_bits`] are `specials` (`len` if there is none).
pub(crate) fn next_special(specials: &[u64], len: usize, from: usize) -> usize {
    let word = from / 64;
    // The 64 bits from `from` on, out of two words (the index ends with a word of zeros):
    // one shift, whether or not a word's end falls inside the string.
    let Some(&[low, high]) = specials.get(word..word + 2) else {
        return len;
    };
    let bits = ((u128::from(high) << 64 | u128::from(low)) >> (from % 64)) as u64;
    if bits != 0 {
        return from + bits.trailing_zeros() as usize;
    }
    // Nothing in the 64 bytes from `from`: nor before it in the next word.
    next_special_from_word(specials, len, word + 1)
}

/// [`next_special`] from the start of word `word` on (out of line: the strings of a log file
/// are nearly all shorter than 64 bytes, and the scan's hot loop stays small).
#[cold]
#[inline(never)]
fn next_special_from_word(specials: &[u64], len: usize, mut word: usize) -> usize {
    loop {
        match specials.get(word) {
            None => return len,
            Some(0) => word += 1,
            Some(bits) => return word * 64 + bits.trailing_zeros() as usize,
        }
    }
}

/// One bit per byte of `text` (bit `k` of word `w` for byte `64 w + k`), set for a quote, a
/// backslash or a control character (below 0x20): where a string's plain run ends. Computed
/// once for a whole log file, sixteen bytes per instruction on x86-64, it finds each string's
/// end with a shift and a count instead of a walk over its bytes. A word of zeros follows the
/// text's words, so that any position has a next word.
pub(crate) fn special_bits(text: &[u8], out: &mut Vec<u64>) {
    out.clear();
    out.reserve(text.len().div_ceil(64) + 1);
    let mut blocks = text.chunks_exact(64);
    for block in &mut blocks {
        out.push(block_bits(block.try_into().expect("64 bytes")));
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        out.push(padded_block_bits(rest));
    }
    out.push(0);
}

/// [`block_bits`] of fewer than 64 bytes, padded with spaces (which are not special).
fn padded_block_bits(rest: &[u8]) -> u64 {
    let mut block = [b' '; 64];
    block[..rest.len()].copy_from_slice(rest);
    block_bits(&block)
}

#[cfg(target_arch = "x86_64")]
fn block_bits(block: &[u8; 64]) -> u64 {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, min_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let splat = |c: u8| set_splat_i8_m128i(c as i8);
    let (quote, backslash, last_control) = (splat(b'"'), splat(b'\\'), splat(0x1f));
    let mut bits = 0;
    for (k, part) in block.chunks_exact(16).enumerate() {
        let v = load_unaligned_m128i(part.try_into().expect("16 bytes"));
        // A byte is a control character when the unsigned minimum with 0x1f leaves it as is.
        let control = cmp_eq_mask_i8_m128i(min_u8_m128i(v, last_control), v);
        let special = bitor_m128i(
            bitor_m128i(
                cmp_eq_mask_i8_m128i(v, quote),
                cmp_eq_mask_i8_m128i(v, backslash),
            ),
            control,
        );
        bits |= u64::from(move_mask_i8_m128i(special) as u16) << (16 * k);
    }
    bits
}

#[cfg(not(target_arch = "x86_64"))]
fn block_bits(block: &[u8; 64]) -> u64 {
    block_bits_bytewise(block)
}

/// [`block_bits`] a byte at a time: elsewhere than x86-64, and what the tests hold it to.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn block_bits_bytewise(block: &[u8; 64]) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0, |bits, (k, &c)| bits | u64::from(is_special(c)) << k)
}

/// A byte that ends a string's plain run: a quote, a backslash or a control character.
fn is_special(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// Whether two member names are equal, compared a word at a time: for names this short, a call
/// to the C library's `memcmp` (what `==` on slices becomes) costs more than the comparison.
#[inline]
pub(crate) fn same_name(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        0..4 => a.iter().zip(b).all(|(x, y)| x == y),
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        // Words from the start, and the last (overlapping) word.
        _ => {
            (0..n - 8).step_by(8).all(|at| word(a, at) == word(b, at))
                && word(a, n - 8) == word(b, n - 8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the `serde_json` path says: whether the text is valid, and the value at the step.
    fn reference<'a>(json: &'a str, step: &Step) -> (bool, Option<&'a str>) {
        match crate::udf::step_by_serde(json, step) {
            Some(found) => (true, found),
            None => (false, None),
        }
    }

    fn check(json: &str, step: &Step) {
        let (valid, expected) = reference(json, step);
        match find(json, step) {
            Scan::Valid(found) => {
                let fits = matches!(
                    (step, json.trim_start().as_bytes().first()),
                    (Step::Member(_), Some(b'{')) | (Step::Index(_), Some(b'['))
                );
                // A step that does not fit answers nothing without judging the text.
                assert!(valid || !fits, "{json:?}: accepted, serde_json refuses it");
                assert_eq!(found, expected, "{json:?} {step:?}");
            }
            Scan::Invalid => assert!(!valid, "{json:?}: refused, serde_json accepts it"),
            Scan::Unsure => {}
        }
    }

    #[test]
    fn the_scan_judges_text_as_serde_json_does() {
        let texts = [
            r#"{"a":1}"#,
            r#" { "a" : 1 , "b" : [ 1 , 2 ] } "#,
            "{\"a\":\n\t1\r}",
            r#"{}"#,
            r#"[]"#,
            r#"[1,2,3]"#,
            r#"[[1],[2,[3]],{"a":[]}]"#,
            r#"{"a":1,"a":2}"#,
            r#"{"b":{"a":1},"a":"x"}"#,
            r#"{"a":"x\"y\\z\/\b\f\n\r\t\u00e9\uD83D\uDE00"}"#,
            r#"{"a":"\uD800"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"\u12G4"}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"nl\nhere\"}",
            "{\"a\":\"\u{7f}\u{e9}\u{1F600}\"}",
            r#"{"a\u0062":1,"ab":2}"#,
            r#"{"ab":1}"#,
            r#"{"a":1,}"#,
            r#"{"a":1,,"b":2}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{a:1}"#,
            r#"{"a":1"#,
            r#"{"a":1}}"#,
            r#"{"a":1} x"#,
            r#"{"a":1} {}"#,
            r#"[1,]"#,
            r#"[,1]"#,
            r#"[1 2]"#,
            r#"{"a":true,"b":false,"c":null}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":True}"#,
            r#"{"a":truex}"#,
            r#"{"a":0}"#,
            r#"{"a":-0}"#,
            r#"{"a":01}"#,
            r#"{"a":-}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1.5e10}"#,
            r#"{"a":1E+2}"#,
            r#"{"a":1e-2}"#,
            r#"{"a":1e}"#,
            r#"{"a":1e+}"#,
            r#"{"a":+1}"#,
            r#"{"a":1e400}"#,
            r#"{"a":123456789012345678901234567890}"#,
            r#"{"a":0x10}"#,
            r#"{"a":"unterminated}"#,
            r#"""#,
            r#""a""#,
            "1",
            "null",
            "",
            "   ",
            r#"{"a":[1,{"b":[2,{"c":"d"}]}],"e":{"f":{"g":[]}}}"#,
        ];
        let steps = [
            Step::Member("a".into()),
            Step::Member("ab".into()),
            Step::Member("e".into()),
            Step::Member("missing".into()),
            Step::Index(0),
            Step::Index(1),
            Step::Index(5),
        ];
        for text in texts {
            // Shifted across the 64-byte words of the text's bits.
            for shift in [0, 1, 7, 60, 63, 64, 65, 127] {
                let shifted = format!("{}{text}", " ".repeat(shift));
                for step in &steps {
                    check(&shifted, step);
                }
            }
        }
        // Strings longer than a block, with blocks that hold no special byte.
        for len in [63, 64, 65, 200, 300] {
            let long = "x".repeat(len);
            check(
                &format!(r#"{{"a":"{long}","b":"{long}\n{long}"}}"#),
                &steps[0],
            );
            check(&format!(r#"{{"a":"{long}"#), &steps[0]);
        }
    }

    #[test]
    fn special_bits_mark_every_quote_backslash_and_control_character() {
        // Every byte value, every seventh byte, in texts of lengths around blocks (and below,
        // every byte value in every position of a block against the bytewise form).
        let mut bits = Vec::new();
        for len in [0, 1, 63, 64, 65, 128, 130] {
            for value in 0..=255u8 {
                let text: Vec<u8> = (0..len)
                    .map(|k: usize| {
                        if k % 7 == 3 {
                            value
                        } else {
                            b'a' + (k % 26) as u8
                        }
                    })
                    .collect();
                special_bits(&text, &mut bits);
                assert_eq!(bits.len(), len.div_ceil(64) + 1);
                for (k, &c) in text.iter().enumerate() {
                    let set = bits[k / 64] >> (k % 64) & 1 == 1;
                    assert_eq!(set, c == b'"' || c == b'\\' || c < 0x20, "{c:#x} at {k}");
                }
                // Nothing past the text, and a word of zeros after it.
                if len % 64 != 0 {
                    assert_eq!(bits[len / 64] >> (len % 64), 0);
                }
                assert_eq!(bits.last(), Some(&0));
            }
        }
        for value in 0..=255u8 {
            let block = [value; 64];
            assert_eq!(
                block_bits(&block),
                block_bits_bytewise(&block),
                "{value:#x}"
            );
        }
    }

    #[test]
    fn plain_runs_end_at_the_first_quote_backslash_or_control_character() {
        // Lengths across two 64-byte words, the special byte at every position.
        let mut bits = Vec::new();
        for len in 0..140 {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for at in 0..=len {
                    // Plain bytes of every kind around it, including bytes above 0x7f.
                    let mut b: Vec<u8> = (0..len)
                        .map(|k| [b'a', 0x20, 0x7f, 0x80, 0xff, b'!'][k % 6])
                        .collect();
                    if at < len {
                        b[at] = special;
                        // A later special byte must not hide the first.
                        if at + 1 < len {
                            b[at + 1] = 0x01;
                        }
                    }
                    special_bits(&b, &mut bits);
                    for from in [0, at / 2, at] {
                        assert_eq!(next_special(&bits, len, from), at, "{b:?} from {from}");
                    }
                }
            }
        }
    }

    #[test]
    fn names_of_every_length_up_to_40_equal_only_themselves() {
        // Each byte changed, and each length changed, makes them differ.
        for n in 0..40 {
            let name: Vec<u8> = (0..n).map(|i| b'a' + (i * 7 % 26) as u8).collect();
            assert!(same_name(&name, &name.clone()));
            for at in 0..n {
                let mut other = name.clone();
                other[at] ^= 0x20;
                assert!(!same_name(&name, &other), "{n} {at}");
            }
            assert!(!same_name(&name, &name[..n.saturating_sub(1)]) || n == 0);
            assert!(!same_name(&name, &[name.as_slice(), b"x"].concat()));
        }
    }

    #[test]
    fn deep_nesting_is_left_to_serde_json() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(150), "]".repeat(150));
        assert_eq!(find(&deep, &Step::Member("a".into())), Scan::Unsure);
        let fine = format!("{{\"a\":{}1{}}}", "[".repeat(50), "]".repeat(50));
        check(&fine, &Step::Member("a".into()));
        assert!(matches!(
            find(&fine, &Step::Member("a".into())),
            Scan::Valid(Some(_))
        ));
        // An escaped key, when a member is looked for.
        assert_eq!(
            find(r#"{"a\u0062":1}"#, &Step::Member("ab".into())),
            Scan::Unsure
        );
    }

    /// Every JSON text column of every sample record, every member and element path one and
    /// two steps deep, and the same texts cut short.
    #[test]
    fn the_scan_agrees_with_serde_json_on_the_samples() {
        let mut checked = 0;
        for record in crate::tests::sample_records() {
            for column in [
                "requestParameters",
                "responseElements",
                "additionalEventData",
                "serviceEventDetails",
                "userIdentity",
            ] {
                let Some(value) = record.get(column).filter(|v| !v.is_null()) else {
                    continue;
                };
                let text = value.to_string();
                let pretty = serde_json::to_string_pretty(value).expect("pretty");
                let mut steps = vec![Step::Index(0), Step::Member("none".into())];
                if let Some(object) = value.as_object() {
                    steps.extend(object.keys().map(|k| Step::Member(k.clone())));
                }
                for step in &steps {
                    for t in [text.as_str(), pretty.as_str()] {
                        check(t, step);
                        let cut = t.floor_char_boundary(t.len() * 2 / 3);
                        check(&t[..cut], step);
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 1000, "only {checked} cases");
    }
}
