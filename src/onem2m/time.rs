//! oneM2M timestamps: ISO 8601 basic format, `20250101T120000` with an optional `,ffffff`
//! fraction (TS-0004 §6.3.3, as ACME and OpenMTC write them). Always UTC.
//!
//! Every time this CSE keeps lies in the years 0000–9999, so that it has one fixed-width
//! string form: [`format`] gives it, and string order of stored times (SQL's `et <= ?`) is time
//! order. Arithmetic goes through [`after`] and [`before`], which refuse to leave that range
//! instead of overflowing; durations a client sets are at most [`MAX_SECONDS`].

use chrono::{DateTime, Datelike, NaiveDateTime, TimeDelta, TimeZone, Utc};

const FORMAT: &str = "%Y%m%dT%H%M%S";

/// The longest duration a client may set (`mia` and the like): 100 years. Anything longer
/// means "never" in practice, and is refused (4000) rather than overflowing time arithmetic.
pub const MAX_SECONDS: u64 = 100 * 366 * 24 * 3600;

/// Formats a time the way this CSE writes every timestamp: with microseconds, so that strings
/// of this form sort in time order.
pub fn format(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%S,%6f").to_string()
}

pub fn now() -> String {
    format(Utc::now())
}

/// Parses `YYYYMMDDTHHMMSS` with an optional `,ffffff` (or `.ffffff`) fraction and an optional
/// trailing `Z`.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (whole, frac) = match s.find([',', '.']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    if whole.len() != 15 {
        return None;
    }
    let base = NaiveDateTime::parse_from_str(whole, FORMAT).ok()?;
    let micros = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            // Scale to microseconds: "5" is 500000, "123456789" is 123456.
            let digits: String = f.chars().chain(std::iter::repeat('0')).take(6).collect();
            digits.parse::<u32>().ok()?
        }
        Some(_) => return None,
    };
    let t = base.and_utc() + chrono::Duration::microseconds(micros as i64);
    Some(Utc.from_utc_datetime(&t.naive_utc()))
}

/// `t` plus `secs` seconds, or `None` past the year 9999.
pub fn after(t: DateTime<Utc>, secs: u64) -> Option<DateTime<Utc>> {
    let delta = TimeDelta::try_seconds(i64::try_from(secs).ok()?)?;
    t.checked_add_signed(delta).filter(in_range)
}

/// `t` minus `secs` seconds, or `None` before the year 0000.
pub fn before(t: DateTime<Utc>, secs: u64) -> Option<DateTime<Utc>> {
    let delta = TimeDelta::try_seconds(i64::try_from(secs).ok()?)?;
    t.checked_sub_signed(delta).filter(in_range)
}

fn in_range(t: &DateTime<Utc>) -> bool {
    (0..=9999).contains(&t.year())
}

/// Brings a valid timestamp to the canonical form of [`format`], so that stored times compare
/// correctly as strings.
pub fn canonical(s: &str) -> Option<String> {
    parse(s).map(format)
}

/// [`parse`], or ISO 8601's extended form with an offset (`2026-11-25T19:49:10.784480+00:00`,
/// as OpenMTC's application framework writes filter criteria). Output stays basic.
pub fn parse_lenient(s: &str) -> Option<DateTime<Utc>> {
    parse(s).or_else(|| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(in_range)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_microseconds() {
        let t =
            Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::microseconds(7);
        assert_eq!(format(t), "20250102T030405,000007");
    }

    #[test]
    fn parses_plain_fraction_and_zulu_forms() {
        let t = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(parse("20250102T030405"), Some(t));
        assert_eq!(parse("20250102T030405Z"), Some(t));
        assert_eq!(
            parse("20250102T030405,5"),
            Some(t + chrono::Duration::milliseconds(500))
        );
        assert_eq!(
            parse("20250102T030405.123456789"),
            Some(t + chrono::Duration::microseconds(123456))
        );
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            "",
            "2025-01-02T03:04:05",
            "20250102T0304",
            "20251302T030405",
            "20250102T030405,",
            "20250102T030405,12a",
            "20250102T250405",
            "x20250102T03040",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} should not parse");
        }
    }

    #[test]
    fn arithmetic_stays_within_the_years_a_timestamp_can_write() {
        let t = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            after(t, 60),
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 3, 5, 5).unwrap())
        );
        assert!(after(t, MAX_SECONDS).is_some());
        // 3e11 s is past 9999 (it was written "+YYYYY" and compared as a string); 8.2e12 s
        // made chrono panic; u64::MAX does not fit a delta.
        for secs in [300_000_000_000, 8_200_000_000_000, u64::MAX] {
            assert_eq!(after(t, secs), None, "{secs}");
            assert_eq!(before(t, secs), None, "{secs}");
        }
        assert_eq!(
            before(t, 3600),
            Some(Utc.with_ymd_and_hms(2025, 1, 2, 2, 4, 5).unwrap())
        );
    }

    #[test]
    fn the_extended_form_is_read_where_clients_send_it() {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 19, 49, 10).unwrap()
            + chrono::Duration::microseconds(784480);
        assert_eq!(parse_lenient("2026-11-25T19:49:10.784480+00:00"), Some(t));
        assert_eq!(
            parse_lenient("2026-11-25T20:49:10.784480+01:00"),
            Some(t),
            "offsets are honoured"
        );
        assert_eq!(parse_lenient("20261125T194910,784480"), Some(t));
        assert_eq!(parse_lenient("2026-11-25 19:49"), None);
    }

    #[test]
    fn canonical_strings_sort_in_time_order() {
        let a = canonical("20250102T030405").unwrap();
        let b = canonical("20250102T030405,5").unwrap();
        let c = canonical("20250102T030406").unwrap();
        assert!(a < b && b < c);
        assert_eq!(a, "20250102T030405,000000");
    }
}
