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
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::protocol::Stream;
pub use execdriver_spec::logline::{parse_line, rfc3339_nanos, LogLine, MAX_LINE};

/// Size-based rotation: `log` moves to `log.1`, `log.1` to `log.2`, ... keeping `max_files`
/// files in all. `max_size == 0` means never rotate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    pub max_files: u32,
}

pub struct LogWriter {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    rotation: Rotation,
    /// Bytes of an unfinished line, per stream (stdout, stderr).
    partial: [Vec<u8>; 2],
    /// "<timestamp> " for the chunk being written: one clock read per chunk, not per line.
    stamp: String,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Buffer in front of the file; [`LogWriter::flush`] empties it whenever the shim goes idle.
const BUFFER: usize = 256 * 1024;

impl LogWriter {
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<LogWriter> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_owned(),
            file: BufWriter::with_capacity(BUFFER, file),
            size,
            rotation,
            partial: [Vec::new(), Vec::new()],
            stamp: String::new(),
        })
    }

    /// Records bytes the container wrote on `stream`.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let idx = if stream == Stream::Stderr { 1 } else { 0 };
        self.stamp = rfc3339_nanos(crate::state::now_ns());
        let mut rest = data;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            if self.partial[idx].is_empty() {
                self.emit_text(stream, &rest[..nl], true)?;
            } else {
                let mut text = std::mem::take(&mut self.partial[idx]);
                text.extend_from_slice(&rest[..nl]);
                self.emit_text(stream, &text, true)?;
                text.clear();
                self.partial[idx] = text; // keep the allocation
            }
            rest = &rest[nl + 1..];
        }
        // What has no newline yet waits, up to MAX_LINE; whole MAX_LINE pieces go out as P.
        if self.partial[idx].is_empty() {
            while rest.len() >= MAX_LINE {
                self.emit_line(stream, &rest[..MAX_LINE], false)?;
                rest = &rest[MAX_LINE..];
            }
        }
        self.partial[idx].extend_from_slice(rest);
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
            self.stamp = rfc3339_nanos(crate::state::now_ns());
            let text = std::mem::take(&mut self.partial[idx]);
            self.emit_text(stream, &text, false)?;
        }
        self.flush()
    }

    /// Writes buffered lines to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Closes and reopens the file, for tools that moved it away.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let file = open_append(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = BufWriter::with_capacity(BUFFER, file);
        Ok(())
    }

    fn emit_text(&mut self, stream: Stream, text: &[u8], full: bool) -> io::Result<()> {
        if text.is_empty() {
            return self.emit_line(stream, b"", full);
        }
        let mut chunks = text.chunks(MAX_LINE).peekable();
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.emit_line(stream, chunk, full && last)?;
        }
        Ok(())
    }

    fn emit_line(&mut self, stream: Stream, text: &[u8], full: bool) -> io::Result<()> {
        let head: &[u8] = match (stream == Stream::Stderr, full) {
            (false, true) => b" stdout F ",
            (false, false) => b" stdout P ",
            (true, true) => b" stderr F ",
            (true, false) => b" stderr P ",
        };
        let len = (self.stamp.len() + head.len() + text.len() + 1) as u64;
        if self.rotation.max_size > 0 && self.size > 0 && self.size + len > self.rotation.max_size {
            self.rotate()?;
        }
        self.file.write_all(self.stamp.as_bytes())?;
        self.file.write_all(head)?;
        self.file.write_all(text)?;
        self.file.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
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
        self.file = BufWriter::with_capacity(BUFFER, open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
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
        w.flush().unwrap();
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
