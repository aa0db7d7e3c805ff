//! UTC timestamps as CloudTrail writes them: `YYYY-MM-DDTHH:MM:SSZ`, optionally with a
//! fraction of a second (`.f` to `.fffffffff`) before the `Z`.
//!
//! Times are carried as milliseconds since the Unix epoch ([`EpochMillis`]); parsing and
//! formatting are pure and allocation-free except for the formatted string.

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type EpochMillis = i64;

/// Why a timestamp did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeParseError {
    /// What was wrong, for the user.
    pub reason: &'static str,
}

impl fmt::Display for TimeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for TimeParseError {}

const SHAPE: &str = "must be UTC ISO-8601 with a literal Z, like 2026-02-11T10:15:00Z";

fn digits(bytes: &[u8]) -> Option<i64> {
    let mut value = 0i64;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(b - b'0');
    }
    Some(value)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day number counted from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` into epoch milliseconds.
pub fn parse_utc(text: &str) -> Result<EpochMillis, TimeParseError> {
    let err = |reason| TimeParseError { reason };
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err(err(SHAPE));
    }
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return Err(err(SHAPE));
    }
    let field =
        |range: std::ops::Range<usize>| digits(&b[range]).ok_or(TimeParseError { reason: SHAPE });
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    let mut millis = 0;
    let rest = &b[19..];
    let tail = match rest.first() {
        Some(b'.') => {
            let frac_len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if frac_len == 0 || frac_len > 9 {
                return Err(err("fraction of a second must have 1 to 9 digits"));
            }
            let frac = &rest[1..1 + frac_len];
            for (i, &c) in frac.iter().take(3).enumerate() {
                millis += i64::from(c - b'0') * [100, 10, 1][i];
            }
            &rest[1 + frac_len..]
        }
        _ => rest,
    };
    if tail != b"Z" {
        return Err(err(SHAPE));
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(err("date is not a valid calendar date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(err("time of day is out of range"));
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (seconds precision, as CloudTrail does).
pub fn format_utc_seconds(millis: EpochMillis) -> String {
    let secs = millis.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// The UTC day number (days since 1970-01-01) that contains `millis`.
pub fn utc_day(millis: EpochMillis) -> i64 {
    millis.div_euclid(86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cloudtrail_times() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_utc("2023-07-19T21:17:28Z"), Ok(1_689_801_448_000));
        assert_eq!(parse_utc("2023-07-19T21:17:28.5Z"), Ok(1_689_801_448_500));
        assert_eq!(
            parse_utc("2023-07-19T21:17:28.123456789Z"),
            Ok(1_689_801_448_123)
        );
        assert_eq!(parse_utc("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "2023-07-19 21:17:28",
            "2023-07-19T21:17:28",
            "2023-07-19T21:17:28+00:00",
            "2023-07-19T21:17:28.Z",
            "2023-13-19T21:17:28Z",
            "2023-02-29T21:17:28Z",
            "2023-07-19T24:17:28Z",
            "2023-07-19T21:17:28Zjunk",
            "",
            "yesterday",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn format_round_trips() {
        for t in [
            "1970-01-01T00:00:00Z",
            "2023-07-19T21:17:28Z",
            "2099-12-31T23:59:59Z",
            "1969-12-31T23:59:59Z",
        ] {
            let ms = parse_utc(t).expect("valid");
            assert_eq!(format_utc_seconds(ms), t);
        }
    }
}
