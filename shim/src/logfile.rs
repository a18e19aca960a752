//! The container's log: every byte it writes, as CRI log lines, rotated by size.
//!
//! Format (the CRI one, as containerd and CRI-O write it):
//!
//! ```text
//! 2026-11-29T08:36:51.123456789Z stdout F a whole line
//! 2026-11-29T08:36:51.123456790Z stderr P part of a line (no newline followed)
//! ```
//!
//! `F` lines ended with a newline in the output; `P` lines did not (a line longer than
//! [`MAX_LINE`], or the last bytes before the stream ended). Concatenating the texts, with a
//! newline after each `F`, gives the stream back byte for byte.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::protocol::Stream;

/// Longest text in one log line; longer lines are split into `P` pieces.
pub const MAX_LINE: usize = 16 * 1024;

/// Size-based rotation: `log` moves to `log.1`, `log.1` to `log.2`, ... keeping `max_files`
/// files in all. `max_size == 0` means never rotate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    pub max_files: u32,
}

pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
    /// Bytes of an unfinished line, per stream (stdout, stderr).
    partial: [Vec<u8>; 2],
    line: Vec<u8>,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

impl LogWriter {
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<LogWriter> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_owned(),
            file,
            size,
            rotation,
            partial: [Vec::new(), Vec::new()],
            line: Vec::with_capacity(256),
        })
    }

    /// Records bytes the container wrote on `stream`.
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) -> io::Result<()> {
        let idx = if stream == Stream::Stderr { 1 } else { 0 };
        while !data.is_empty() {
            match data.iter().position(|b| *b == b'\n') {
                Some(nl) => {
                    let mut text = std::mem::take(&mut self.partial[idx]);
                    text.extend_from_slice(&data[..nl]);
                    self.emit_text(stream, &text, true)?;
                    data = &data[nl + 1..];
                }
                None => {
                    self.partial[idx].extend_from_slice(data);
                    data = &[];
                }
            }
        }
        if self.partial[idx].len() >= MAX_LINE {
            let text = std::mem::take(&mut self.partial[idx]);
            self.emit_text(stream, &text, false)?;
        }
        Ok(())
    }

    /// Writes out what is left of an unfinished line (at the end of a stream).
    pub fn flush_partial(&mut self, stream: Stream) -> io::Result<()> {
        let idx = if stream == Stream::Stderr { 1 } else { 0 };
        if !self.partial[idx].is_empty() {
            let text = std::mem::take(&mut self.partial[idx]);
            self.emit_text(stream, &text, false)?;
        }
        Ok(())
    }

    /// Closes and reopens the file, for tools that moved it away.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = open_append(&self.path)?;
        self.size = self.file.metadata()?.len();
        Ok(())
    }

    fn emit_text(&mut self, stream: Stream, text: &[u8], full: bool) -> io::Result<()> {
        for (i, chunk) in text.chunks(MAX_LINE).enumerate() {
            let last = (i + 1) * MAX_LINE >= text.len();
            self.emit_line(stream, chunk, full && last)?;
        }
        if text.is_empty() {
            self.emit_line(stream, b"", full)?;
        }
        Ok(())
    }

    fn emit_line(&mut self, stream: Stream, text: &[u8], full: bool) -> io::Result<()> {
        self.line.clear();
        self.line
            .extend_from_slice(rfc3339_nanos(crate::state::now_ns()).as_bytes());
        self.line.extend_from_slice(if stream == Stream::Stderr {
            b" stderr "
        } else {
            b" stdout "
        });
        self.line
            .extend_from_slice(if full { b"F " } else { b"P " });
        self.line.extend_from_slice(text);
        self.line.push(b'\n');
        if self.rotation.max_size > 0
            && self.size > 0
            && self.size + self.line.len() as u64 > self.rotation.max_size
        {
            self.rotate()?;
        }
        self.file.write_all(&self.line)?;
        self.size += self.line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.max_files.max(1);
        let name = |n: u32| -> PathBuf {
            if n == 0 {
                self.path.clone()
            } else {
                PathBuf::from(format!("{}.{n}", self.path.display()))
            }
        };
        // Files log.(keep-1) and older fall off; the rest shift up by one.
        let _ = fs::remove_file(name(keep - 1));
        for n in (0..keep - 1).rev() {
            let _ = fs::rename(name(n), name(n + 1));
        }
        if keep == 1 {
            let _ = fs::remove_file(name(0));
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

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

/// Parses what [`rfc3339_nanos`] writes (and the same with fewer fractional digits or none).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut tp = hms.split(':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let se: i64 = tp.next()?.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let days = days_from_civil(y, m, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000_000) + nanos)
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

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("execdriver-log-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn reassemble(text: &str, stream: Stream) -> Vec<u8> {
        let mut out = Vec::new();
        for line in text.lines() {
            let l = parse_line(line.as_bytes()).unwrap();
            if l.stream == stream {
                out.extend_from_slice(l.text);
                if l.full {
                    out.push(b'\n');
                }
            }
        }
        out
    }

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
    }

    #[test]
    fn lines_reassemble_exactly() {
        let d = tmp("lines");
        let path = d.join("log");
        let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
        let big = vec![b'x'; MAX_LINE * 2 + 5];
        w.write(Stream::Stdout, b"one\ntw").unwrap();
        w.write(Stream::Stderr, b"err\n").unwrap();
        w.write(Stream::Stdout, b"o\n\nthree").unwrap();
        w.write(Stream::Stdout, &big).unwrap();
        w.write(Stream::Stdout, b"\nend").unwrap();
        w.flush_partial(Stream::Stdout).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let mut want = b"one\ntwo\n\nthree".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"\nend");
        assert_eq!(reassemble(&text, Stream::Stdout), want);
        assert_eq!(reassemble(&text, Stream::Stderr), b"err\n");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rotation_bounds_size_and_count() {
        let d = tmp("rot");
        let path = d.join("log");
        let mut w = LogWriter::open(
            &path,
            Rotation {
                max_size: 1000,
                max_files: 3,
            },
        )
        .unwrap();
        for i in 0..200 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let mut names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec!["log", "log.1", "log.2"]);
        for n in &names {
            assert!(fs::metadata(d.join(n)).unwrap().len() <= 1000);
        }
        assert!(fs::read_to_string(&path).unwrap().contains("line 199"));
        fs::remove_dir_all(&d).unwrap();
    }
}
