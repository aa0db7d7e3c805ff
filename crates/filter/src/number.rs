//! Exact comparison of decimal numbers written in the pattern and the event (no rounding).

use std::cmp::Ordering;

/// A decimal: sign, significant digits (no leading or trailing zeros), and the power of ten of
/// the first digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

/// Whether `text` has the number syntax of spec §6.1 (signs, fractions, exponents).
pub fn parse(text: &str) -> Option<Decimal> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if matches!(b.first(), Some(b'+' | b'-')) {
        negative = b[0] == b'-';
        i = 1;
    }
    let mut int = Vec::new();
    while i < b.len() && b[i].is_ascii_digit() {
        int.push(b[i] - b'0');
        i += 1;
    }
    let mut frac = Vec::new();
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            frac.push(b[i] - b'0');
            i += 1;
        }
    }
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut exp: i64 = 0;
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        let mut neg = false;
        if i < b.len() && matches!(b[i], b'+' | b'-') {
            neg = b[i] == b'-';
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            exp = exp.saturating_mul(10).saturating_add((b[i] - b'0') as i64);
            i += 1;
        }
        if i == start {
            return None;
        }
        if neg {
            exp = -exp;
        }
    }
    if i != b.len() {
        return None;
    }
    let int_len = int.len() as i64;
    let mut digits: Vec<u8> = int.into_iter().chain(frac).collect();
    let leading = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading);
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        return Some(Decimal {
            negative: false,
            digits,
            exponent: 0,
        });
    }
    Some(Decimal {
        negative,
        exponent: int_len - leading as i64 + exp,
        digits,
    })
}

fn magnitude(a: &Decimal, b: &Decimal) -> Ordering {
    match (a.digits.is_empty(), b.digits.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    a.exponent
        .cmp(&b.exponent)
        .then_with(|| a.digits.cmp(&b.digits))
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let zero = |d: &Decimal| d.digits.is_empty();
        match (self.negative && !zero(self), other.negative && !zero(other)) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => magnitude(self, other),
            (true, true) => magnitude(other, self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_written_differently() {
        let one = parse("1").expect("1");
        for text in ["1.0", "1e0", "10e-1", "+1", "0.1e1", "1.000"] {
            assert_eq!(parse(text).expect(text), one, "{text}");
        }
        assert!(parse("-0.5").expect("n") < parse("0").expect("z"));
        assert!(parse("10e3").expect("a") > parse("9999.99").expect("b"));
        assert!(parse("-2").expect("a") < parse("-1.5").expect("b"));
        assert_eq!(parse("-0").expect("a"), parse("0.0").expect("b"));
        assert!(
            parse("12345678901234567890").expect("a") < parse("12345678901234567891").expect("b")
        );
        for bad in ["", "-", ".", "1e", "1x", "e5", "--1"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(parse(".5").is_some() && parse("5.").is_some());
    }
}
