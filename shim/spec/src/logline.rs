//! The container log's line format (the CRI one, as containerd and CRI-O write it), and
//! RFC 3339 times:
//!
//! ```text
//! 2026-11-29T08:36:51.123456789Z stdout F a whole line
//! 2026-11-29T08:36:51.123456790Z stderr P part of a line (no newline followed)
//! ```
//!
//! `F` lines ended with a newline in the output; `P` lines did not (a line longer than
//! [`MAX_LINE`], or the last bytes before the stream ended). Concatenating the texts, with a
//! newline after each `F`, gives the stream back byte for byte. The shim writes the lines
//! (`execdriver_shim::logfile`); the driver and the CLI read them.
//!
//! Formatting is hand-written (it runs for every line the shim writes and must not allocate
//! beyond the line); parsing, which takes user input, is the `time` crate's.

use crate::protocol::Stream;

/// The longest line written whole; longer output is split into `P` lines.
pub const MAX_LINE: usize = 16 * 1024;

/// Formats Unix nanoseconds as RFC 3339 in UTC with nine fractional digits.
pub fn rfc3339_nanos(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an RFC 3339 time (`2026-11-29T08:36:51.123456789Z`, any offset, any number of
/// fractional digits up to nine) to Unix nanoseconds; `None` for anything else, out-of-range
/// fields (month 13, hour 99) included.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One parsed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub time_ns: i64,
    pub stream: Stream,
    pub full: bool,
    pub text: &'a [u8],
}

/// Parses one line (without its trailing newline).
pub fn parse_line(line: &[u8]) -> Option<LogLine<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let text = parts.next().unwrap_or(b"");
    Some(LogLine {
        time_ns: parse_rfc3339(ts)?,
        stream,
        full,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nanos(1_795_941_411_123_456_789),
            "2026-11-29T08:36:51.123456789Z"
        );
        for ns in [0, 1, 951_782_400_000_000_007, 1_795_941_411_123_456_789] {
            assert_eq!(parse_rfc3339(&rfc3339_nanos(ns)), Some(ns));
        }
        assert_eq!(
            parse_rfc3339("2026-11-29T08:36:51Z"),
            Some(1_795_941_411_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-29T09:36:51.5+01:00"),
            Some(1_795_941_411_500_000_000)
        );
    }

    #[test]
    fn out_of_range_times_are_refused() {
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-29T99:00:00Z",
            "2026-11-29T08:61:00Z",
            "2026-11-29T08:36:51",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_parse() {
        let l = parse_line(b"2026-11-29T08:36:51.123456789Z stderr P half").unwrap();
        assert_eq!(l.stream, Stream::Stderr);
        assert!(!l.full);
        assert_eq!(l.text, b"half");
        assert_eq!(l.time_ns, 1_795_941_411_123_456_789);
        assert!(parse_line(b"2026-11-29T08:36:51Z stdin F x").is_none());
        assert!(parse_line(b"2026-11-29T08:36:51Z stdout X x").is_none());
    }
}
