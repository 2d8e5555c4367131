//! Event time: the instant type, RFC 3339 parsing and formatting, and the
//! human durations (`"30s"`, `"5m"`, `"24h"`) used in configuration and in
//! window names.
//!
//! Time is kept as signed microseconds since the Unix epoch ([`Micros`]):
//! integer epoch milliseconds and RFC 3339 strings with sub-millisecond
//! fractions both convert exactly, and all window arithmetic stays integral.

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

pub const MICROS_PER_MILLI: i64 = 1_000;
pub const MICROS_PER_SEC: i64 = 1_000_000;
pub const MICROS_PER_MIN: i64 = 60 * MICROS_PER_SEC;
pub const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MIN;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// Earliest accepted event time: 0001-01-01T00:00:00Z (RFC 3339's range).
pub const MIN_TS: Micros = -62_135_596_800 * MICROS_PER_SEC;
/// Latest accepted event time: 9998-12-31T23:59:59.999999Z. One year short
/// of RFC 3339's end, so that every window holding an accepted event (at
/// most [`MAX_WINDOW`] long) still ends at a time RFC 3339 can write.
pub const MAX_TS: Micros = 253_370_764_799 * MICROS_PER_SEC + 999_999;
/// Longest window size the config accepts.
pub const MAX_WINDOW: Micros = 365 * MICROS_PER_DAY;

/// Parses an RFC 3339 timestamp that carries an offset (`Z`, `+02:00`, …).
/// Fractions below a microsecond are truncated.
pub fn parse_rfc3339(s: &str) -> Option<Micros> {
    let micros = match parse_rfc3339_common(s.as_bytes()) {
        Some(micros) => micros,
        None => {
            let dt = DateTime::parse_from_rfc3339(s).ok()?;
            let micros = dt.timestamp().checked_mul(MICROS_PER_SEC)?;
            micros.checked_add(i64::from(dt.timestamp_subsec_micros()))?
        }
    };
    (MIN_TS..=MAX_TS).contains(&micros).then_some(micros)
}

/// The fast path of [`parse_rfc3339`] for the common spelling,
/// `YYYY-MM-DDTHH:MM:SS[.f…](Z|±HH:MM)` with every field in range; `None`
/// for anything else (lower-case `t`/`z`, a space, a leap second, an
/// invalid date, …), which chrono then decides. Where it answers, it
/// answers what chrono does (a property test compares them), at a tenth
/// of the cost: half of the events in a typical stream carry such a time.
fn parse_rfc3339_common(b: &[u8]) -> Option<Micros> {
    let head: &[u8; 16] = b.get(..16)?.try_into().ok()?;
    let minute = minute_start(head)?;
    let sep = |at: usize, c: u8| (b.get(at) == Some(&c)).then_some(());
    sep(16, b':')?;
    let second = digits(b, 17, 2)?;
    if second > 59 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start < 6 {
                frac = frac * 10 + i64::from(c - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        frac *= 10i64.pow(6u32.saturating_sub(n as u32));
    }
    let offset = match b.get(i)? {
        b'Z' if b.len() == i + 1 => 0,
        &c @ (b'+' | b'-') if b.len() == i + 6 => {
            let h = digits(b, i + 1, 2)?;
            sep(i + 3, b':')?;
            let m = digits(b, i + 4, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = (h * 60 + m) * 60;
            if c == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    Some((minute + second - offset) * MICROS_PER_SEC + frac)
}

/// `n` decimal digits at `at`, or `None` if any is not a digit.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    b.get(at..at + n)?.iter().try_fold(0i64, |v, &c| {
        c.is_ascii_digit().then(|| v * 10 + i64::from(c - b'0'))
    })
}

/// Seconds from 1970-01-01T00:00 to the local date and minute
/// `YYYY-MM-DDTHH:MM` (offset not applied), or `None` if any field is out
/// of range. Events of one stream share their minute in long runs, one
/// run per zone offset in use (a stream mixing `Z`, `+09:00` and `-05:00`
/// interleaves three), so recent answers are kept per thread, one per
/// local hour: a repeated minute costs one 16-byte compare instead of the
/// date arithmetic.
fn minute_start(head: &[u8; 16]) -> Option<i64> {
    const WAYS: usize = 32;
    thread_local! {
        /// Minutes parsed (their 16 bytes) and their answers. All zero
        /// bytes are not a minute, so the initial entries never match.
        static RECENT: [std::cell::Cell<(u128, i64)>; WAYS] =
            const { [const { std::cell::Cell::new((0, 0)) }; WAYS] };
    }
    let key = u128::from_le_bytes(*head);
    // The hour's digits pick the entry: 24 hours, 24 different entries.
    let way = (usize::from(head[11]) * 10 + usize::from(head[12])) % WAYS;
    let (last, start) = RECENT.with(|r| r[way].get());
    if last == key {
        return Some(start);
    }
    let start = parse_minute(head)?;
    RECENT.with(|r| r[way].set((key, start)));
    Some(start)
}

/// [`minute_start`] without the memory.
fn parse_minute(b: &[u8; 16]) -> Option<i64> {
    let sep = |at: usize, c: u8| (b[at] == c).then_some(());
    let year = digits(b, 0, 4)?;
    sep(4, b'-')?;
    let month = digits(b, 5, 2)?;
    sep(7, b'-')?;
    let day = digits(b, 8, 2)?;
    sep(10, b'T')?;
    let hour = digits(b, 11, 2)?;
    sep(13, b':')?;
    let minute = digits(b, 14, 2)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days from 1970-01-01 to the date, proleptic Gregorian (H. Hinnant's
    // days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60)
}

/// Converts integer epoch milliseconds, rejecting values outside RFC 3339's range.
pub fn from_epoch_millis(ms: i64) -> Option<Micros> {
    let micros = ms.checked_mul(MICROS_PER_MILLI)?;
    (MIN_TS..=MAX_TS).contains(&micros).then_some(micros)
}

/// Formats an instant as RFC 3339 in UTC: `2026-11-23T10:00:00Z`, with a
/// fraction only when the instant is not a whole second.
pub fn format_rfc3339(t: Micros) -> String {
    let secs = t.div_euclid(MICROS_PER_SEC);
    let sub = t.rem_euclid(MICROS_PER_SEC);
    match DateTime::<Utc>::from_timestamp(secs, (sub * 1_000) as u32) {
        Some(dt) if sub == 0 => dt.to_rfc3339_opts(SecondsFormat::Secs, true),
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => t.to_string(),
    }
}

/// Parses a duration such as `"30s"`, `"5m"`, `"24h"`, `"7d"`, `"250ms"`,
/// `"1h30m"` or `"0s"`. Returns a message naming what is wrong.
pub fn parse_duration(s: &str) -> Result<Micros, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration (expected e.g. \"30s\", \"5m\", \"24h\")".into());
    }
    let bytes = text.as_bytes();
    let mut total: i64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!(
                "bad duration {s:?}: expected a number at {:?} (e.g. \"30s\", \"5m\", \"24h\")",
                &text[start..]
            ));
        }
        let n: i64 = text[start..i]
            .parse()
            .map_err(|_| format!("bad duration {s:?}: number too large"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &text[ustart..i] {
            "us" => 1,
            "ms" => MICROS_PER_MILLI,
            "s" => MICROS_PER_SEC,
            "m" => MICROS_PER_MIN,
            "h" => MICROS_PER_HOUR,
            "d" => MICROS_PER_DAY,
            "" => return Err(format!("bad duration {s:?}: missing unit (ms, s, m, h, d)")),
            other => {
                return Err(format!(
                    "bad duration {s:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                ))
            }
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("bad duration {s:?}: too large"))?;
    }
    Ok(total)
}

/// Names a window size by the largest of `h`, `m`, `s` that divides it
/// (`"90s"`, `"5m"`, `"1h"`, `"24h"`); sub-second sizes fall back to `ms`.
pub fn duration_name(d: Micros) -> String {
    if d != 0 && d % MICROS_PER_HOUR == 0 {
        format!("{}h", d / MICROS_PER_HOUR)
    } else if d != 0 && d % MICROS_PER_MIN == 0 {
        format!("{}m", d / MICROS_PER_MIN)
    } else if d % MICROS_PER_SEC == 0 {
        format!("{}s", d / MICROS_PER_SEC)
    } else if d % MICROS_PER_MILLI == 0 {
        format!("{}ms", d / MICROS_PER_MILLI)
    } else {
        format!("{d}us")
    }
}

/// Current wall-clock time in microseconds (only used at the pipeline's edges,
/// never inside the engine).
pub fn wall_clock_now() -> Micros {
    let now = Utc::now();
    now.timestamp() * MICROS_PER_SEC + i64::from(now.timestamp_subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_fractions() {
        let z = parse_rfc3339("2026-11-02T00:00:00.000Z").unwrap();
        assert_eq!(z, 1_793_577_600_000 * MICROS_PER_MILLI);
        assert_eq!(
            parse_rfc3339("2026-11-02T02:00:00.250+02:00").unwrap(),
            z + 250_000
        );
        assert_eq!(
            parse_rfc3339("2026-11-01T19:00:01.900-05:00").unwrap(),
            z + 1_900_000
        );
        assert_eq!(
            parse_rfc3339("2026-11-02T00:00:00.123456Z").unwrap(),
            z + 123_456
        );
        assert!(
            parse_rfc3339("2026-11-02T10:00:00").is_none(),
            "offset is required"
        );
        assert!(parse_rfc3339("yesterday").is_none());
        assert_eq!(from_epoch_millis(1_793_577_600_750), Some(z + 750_000));
        assert!(from_epoch_millis(i64::MAX).is_none());
    }

    #[test]
    fn formats_utc() {
        let z = parse_rfc3339("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(format_rfc3339(z), "2026-11-23T10:00:00Z");
        assert_eq!(format_rfc3339(z + 1_500), "2026-11-23T10:00:00.001500Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30 * MICROS_PER_SEC));
        assert_eq!(parse_duration("5m"), Ok(5 * MICROS_PER_MIN));
        assert_eq!(parse_duration("1h30m"), Ok(90 * MICROS_PER_MIN));
        assert_eq!(parse_duration("250ms"), Ok(250 * MICROS_PER_MILLI));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5s").is_err());
        assert_eq!(duration_name(90 * MICROS_PER_SEC), "90s");
        assert_eq!(duration_name(30 * MICROS_PER_MIN), "30m");
        assert_eq!(duration_name(24 * MICROS_PER_HOUR), "24h");
        assert_eq!(duration_name(90 * MICROS_PER_MIN), "90m");
    }

    use proptest::strategy::Strategy;

    fn chrono_micros(s: &str) -> Option<Micros> {
        let dt = DateTime::parse_from_rfc3339(s).ok()?;
        Some(dt.timestamp() * MICROS_PER_SEC + i64::from(dt.timestamp_subsec_micros()))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Wherever the fast path answers, it answers what chrono answers,
        /// on timestamps with every field a little in or out of range
        /// (month ends and leap years drawn often).
        #[test]
        fn fast_rfc3339_agrees_with_chrono(
            year in proptest::prop_oneof![
                0i64..3,
                1895i64..2105,
                9995i64..10000,
                proptest::sample::select(vec![1900i64, 2000, 2023, 2024, 2100]),
            ],
            month in proptest::prop_oneof![0i64..14, proptest::strategy::Just(2i64)],
            day in proptest::prop_oneof![0i64..33, 27i64..33],
            hour in 0i64..25,
            minute in 0i64..61,
            second in 0i64..62,
            frac in proptest::option::of("[0-9]{0,12}"),
            sep in proptest::sample::select(vec!["T", "T", "t", " "]),
            zone in proptest::prop_oneof![
                proptest::sample::select(vec!["Z".to_string(), "z".into(), "".into(), "+24:00".into()]),
                (proptest::bool::ANY, 0i64..25, 0i64..61)
                    .prop_map(|(p, h, m)| format!("{}{h:02}:{m:02}", if p { '+' } else { '-' })),
            ],
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!("{year:04}-{month:02}-{day:02}{sep}{hour:02}:{minute:02}:{second:02}{frac}{zone}");
            if let Some(fast) = parse_rfc3339_common(text.as_bytes()) {
                proptest::prop_assert_eq!(Some(fast), chrono_micros(&text), "{}", text);
            }
            // Again, now that its minute is the one remembered, and a
            // sibling with the same minute and other seconds and zone.
            let sibling = format!("{}:{:02}.5-01:30", &text[..16.min(text.len())], (second + 7) % 62);
            for t in [&text, &sibling] {
                if let Some(fast) = parse_rfc3339_common(t.as_bytes()) {
                    proptest::prop_assert_eq!(Some(fast), chrono_micros(t), "{}", t);
                }
            }
            proptest::prop_assert_eq!(
                parse_rfc3339(&text),
                chrono_micros(&text).filter(|m| (MIN_TS..=MAX_TS).contains(m)),
                "{}", text
            );
        }
    }

    /// The remembered minute answers only for exactly its 16 bytes: times
    /// that differ from the last one in any single digit of the date or
    /// minute, parsed one after another, each read what chrono reads.
    #[test]
    fn a_remembered_minute_serves_only_its_own_bytes() {
        let base = *b"2024-02-28T23:59:58.250+01:00";
        for at in (0..16).filter(|&i| base[i].is_ascii_digit()) {
            for d in b'0'..=b'9' {
                for text in [base, {
                    let mut t = base;
                    t[at] = d;
                    t
                }] {
                    let text = std::str::from_utf8(&text).unwrap();
                    assert_eq!(
                        parse_rfc3339_common(text.as_bytes()),
                        chrono_micros(text).filter(|_| !text.contains(":60")),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn fast_rfc3339_answers_the_common_spellings() {
        for text in [
            "2026-11-02T00:00:00Z",
            "2026-11-02T00:00:00.666Z",
            "2026-11-02T05:30:00.000+05:30",
            "2024-02-29T23:59:59.1234567-00:00",
            "0001-01-01T00:00:00Z",
        ] {
            assert_eq!(
                parse_rfc3339_common(text.as_bytes()),
                chrono_micros(text),
                "{text}"
            );
            assert!(parse_rfc3339_common(text.as_bytes()).is_some(), "{text}");
        }
    }
}
