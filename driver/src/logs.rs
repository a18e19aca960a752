//! Reading a container's log for the Logs call: the rotated files oldest first, then the
//! current one, then (with follow) what is appended until the container has ended.
//!
//! The shim writes the log; the driver only reads it. The shim drains the container's output
//! into the log before it writes `exit.json`, so once that file exists and the reader is at
//! the end of the current file, nothing more will come.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use execdriver_proto as pb;
use execdriver_spec::logline::parse_line;
use execdriver_spec::protocol::Stream;
use execdriver_spec::state;
use tokio::sync::mpsc;
use tonic::Status;

use crate::render::timestamp;

/// How often a follower looks for new output.
const POLL: Duration = Duration::from_millis(50);
/// Largest chunk sent in one message.
const CHUNK: usize = 64 * 1024;

/// What a Logs call asked for.
#[derive(Debug, Clone)]
pub struct Query {
    pub since_ns: i64,
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Only the last this many lines of what is logged so far.
    pub tail: Option<u32>,
}

/// One log entry as read, after the query's filters.
struct Entry {
    time_ns: i64,
    stream: Stream,
    text: Vec<u8>,
    /// It ends its line (a partial entry is continued by the next).
    full: bool,
}

/// The last lines of the past, held until it has all been read.
struct Tail {
    limit: usize,
    lines: std::collections::VecDeque<Vec<Entry>>,
    /// The entries of a line not yet ended.
    open: Vec<Entry>,
}

impl Tail {
    fn new(limit: u32) -> Tail {
        Tail {
            limit: limit as usize,
            lines: Default::default(),
            open: Vec::new(),
        }
    }

    fn push(&mut self, e: Entry) {
        let full = e.full;
        self.open.push(e);
        if full {
            self.end_line();
        }
    }

    fn end_line(&mut self) {
        if self.open.is_empty() {
            return;
        }
        self.lines.push_back(std::mem::take(&mut self.open));
        while self.lines.len() > self.limit {
            self.lines.pop_front();
        }
    }

    /// The entries kept, oldest first (a line not yet ended counts as one).
    fn into_entries(mut self) -> impl Iterator<Item = Entry> {
        self.end_line();
        self.lines.into_iter().flatten()
    }
}

/// The files of a log named `name` (`log`, or `exec-ID.log`), oldest first: `name.N`, ...,
/// `name.1`, `name`.
pub fn log_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!("{name}.");
    let mut rotated: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let n: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    out.push(dir.join(name));
    out
}

/// Turns log lines into response chunks, merging neighbours of one stream.
struct Emitter {
    query: Query,
    tx: mpsc::Sender<Result<pb::LogsResponse, Status>>,
    pending: Option<(i64, Stream, Vec<u8>)>,
    /// Bytes of a line not yet ended by a newline in the file.
    partial: Vec<u8>,
    /// With a tail: what was read of the past, until [`Emitter::release_tail`].
    tail: Option<Tail>,
}

impl Emitter {
    /// Feeds bytes read from a log file. Returns false once the client has gone.
    async fn feed(&mut self, data: &[u8]) -> bool {
        self.partial.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = self.partial[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl;
            let line = self.partial[start..end].to_vec();
            start = end + 1;
            if !self.line(&line).await {
                return false;
            }
        }
        self.partial.drain(..start);
        true
    }

    async fn line(&mut self, line: &[u8]) -> bool {
        let Some(l) = parse_line(line) else {
            return true;
        }; // not ours: skip
        let wanted = match l.stream {
            Stream::Stderr => self.query.stderr,
            _ => self.query.stdout,
        };
        if !wanted || l.time_ns < self.query.since_ns {
            return true;
        }
        let e = Entry {
            time_ns: l.time_ns,
            stream: l.stream,
            text: l.text.to_vec(),
            full: l.full,
        };
        match self.tail.as_mut() {
            Some(t) => {
                t.push(e);
                true
            }
            None => self.emit(e).await,
        }
    }

    async fn emit(&mut self, e: Entry) -> bool {
        let same =
            matches!(&self.pending, Some((_, s, buf)) if *s == e.stream && buf.len() < CHUNK);
        if !same && !self.flush().await {
            return false;
        }
        let entry = self
            .pending
            .get_or_insert_with(|| (e.time_ns, e.stream, Vec::new()));
        entry.2.extend_from_slice(&e.text);
        if e.full {
            entry.2.push(b'\n');
        }
        true
    }

    /// The past has been read: send the lines the tail kept; from now on, every line.
    async fn release_tail(&mut self) -> bool {
        let Some(t) = self.tail.take() else {
            return true;
        };
        for e in t.into_entries() {
            if !self.emit(e).await {
                return false;
            }
        }
        true
    }

    async fn flush(&mut self) -> bool {
        let Some((time, stream, data)) = self.pending.take() else {
            return true;
        };
        let msg = pb::LogsResponse {
            time: timestamp(time),
            chunk: Some(pb::OutputChunk {
                stream: if stream == Stream::Stderr {
                    pb::Stream::Stderr
                } else {
                    pb::Stream::Stdout
                } as i32,
                data: data.into(),
            }),
        };
        self.tx.send(Ok(msg)).await.is_ok()
    }
}

/// Whether the process writing the log has ended (its last output is then in the log): the
/// init when the container's exit.json exists, an exec'd process when its shim says so.
async fn ended(dir: &Path, exec_id: &str) -> bool {
    if dir.join(state::EXIT).exists() || !dir.exists() {
        return true;
    }
    if exec_id.is_empty() {
        return false;
    }
    let target = execdriver_spec::protocol::Target {
        exec_id: exec_id.to_owned(),
    };
    match crate::shims::call(dir, execdriver_spec::protocol::request::Kind::State(target)).await {
        Ok(Some(execdriver_spec::protocol::response::Kind::State(st))) => {
            st.status == execdriver_spec::protocol::Status::Stopped as i32
        }
        _ => true, // no shim, or it no longer knows the process
    }
}

/// Sends the log `name` of the container in `dir` (its init's, or the exec `exec_id`'s) to
/// `tx` as the query asks.
pub async fn stream(
    dir: PathBuf,
    name: String,
    exec_id: String,
    query: Query,
    tx: mpsc::Sender<Result<pb::LogsResponse, Status>>,
) {
    let follow = query.follow;
    let mut em = Emitter {
        tail: query.tail.map(Tail::new),
        query,
        tx,
        pending: None,
        partial: Vec::new(),
    };
    let mut buf = vec![0u8; 256 * 1024];
    let files = log_files(&dir, &name);
    let (current_path, rotated) = files
        .split_last()
        .expect("log_files always ends with the current log");
    for path in rotated {
        let Ok(mut f) = File::open(path) else {
            continue;
        };
        if !read_to_end(&mut f, &mut buf, &mut em).await {
            return;
        }
        em.partial.clear(); // a rotated file ends with a whole line
    }
    let mut current = File::open(current_path).ok();
    loop {
        if let Some(f) = current.as_mut() {
            if !read_to_end(f, &mut buf, &mut em).await {
                return;
            }
        }
        // Everything logged so far is read: a tail is known.
        if !em.release_tail().await {
            return;
        }
        if !follow {
            break;
        }
        // Look again: the file may have been rotated (a new inode at the path).
        let rotated_away = match (&current, std::fs::metadata(current_path)) {
            (Some(f), Ok(now)) => f.metadata().map(|m| m.ino() != now.ino()).unwrap_or(true),
            (None, Ok(_)) => true,
            (_, Err(_)) => false,
        };
        if rotated_away {
            if let Some(f) = current.as_mut() {
                if !read_to_end(f, &mut buf, &mut em).await {
                    return;
                }
            }
            em.partial.clear();
            current = File::open(current_path).ok();
            continue;
        }
        if ended(&dir, &exec_id).await {
            // exit.json is written after the last output reached the log: one last read.
            if let Some(f) = current.as_mut() {
                if !read_to_end(f, &mut buf, &mut em).await {
                    return;
                }
            }
            break;
        }
        if !em.flush().await {
            return;
        }
        if em.tx.is_closed() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    em.flush().await;
}

async fn read_to_end(f: &mut File, buf: &mut [u8], em: &mut Emitter) -> bool {
    loop {
        match f.read(buf) {
            Ok(0) => return true,
            Ok(n) => {
                if !em.feed(&buf[..n]).await {
                    return false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                let _ = f.seek(SeekFrom::End(0));
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use execdriver_shim::logfile::{LogWriter, Rotation};

    #[tokio::test]
    async fn reads_rotated_files_in_order_and_filters() {
        let dir = std::env::temp_dir().join(format!("execdriver-logs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = LogWriter::open(
            &dir.join("log"),
            Rotation {
                max_size: 300,
                max_files: 5,
            },
        )
        .unwrap();
        let mut want = Vec::new();
        for i in 0..20 {
            let line = format!("line {i}\n");
            w.write(Stream::Stdout, line.as_bytes()).unwrap();
            want.extend_from_slice(line.as_bytes());
            w.write(Stream::Stderr, b"e\n").unwrap();
        }
        w.flush().unwrap();
        assert!(log_files(&dir, "log").len() > 1);
        // Only what the kept files hold comes back, in order: a suffix of what was written.
        let (tx, mut rx) = mpsc::channel(100);
        let q = Query {
            since_ns: 0,
            follow: false,
            stdout: true,
            stderr: false,
            tail: None,
        };
        stream(dir.clone(), "log".into(), String::new(), q, tx).await;
        let mut got = Vec::new();
        while let Some(Ok(m)) = rx.recv().await {
            let c = m.chunk.unwrap();
            assert_eq!(c.stream, pb::Stream::Stdout as i32);
            got.extend_from_slice(&c.data);
        }
        assert!(!got.is_empty());
        assert!(want.ends_with(&got), "{}", String::from_utf8_lossy(&got));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The log's text of a query (both streams, in order).
    async fn read(dir: &Path, tail: Option<u32>, stderr: bool) -> String {
        let (tx, mut rx) = mpsc::channel(100);
        let q = Query {
            since_ns: 0,
            follow: false,
            stdout: true,
            stderr,
            tail,
        };
        stream(dir.to_owned(), "log".into(), String::new(), q, tx).await;
        let mut got = Vec::new();
        while let Some(Ok(m)) = rx.recv().await {
            got.extend_from_slice(&m.chunk.unwrap().data);
        }
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn tail_keeps_the_last_lines_across_files_and_streams() {
        let dir = std::env::temp_dir().join(format!("execdriver-tail-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = LogWriter::open(
            &dir.join("log"),
            Rotation {
                max_size: 200,
                max_files: 10,
            },
        )
        .unwrap();
        for i in 0..10 {
            w.write(Stream::Stdout, format!("out {i}\n").as_bytes())
                .unwrap();
            w.write(Stream::Stderr, format!("err {i}\n").as_bytes())
                .unwrap();
        }
        // A line written in two parts counts once.
        w.write(Stream::Stdout, b"half").unwrap();
        w.write(Stream::Stdout, b" and half\n").unwrap();
        w.flush().unwrap();
        assert!(log_files(&dir, "log").len() > 1);
        assert_eq!(
            read(&dir, Some(3), true).await,
            "out 9\nerr 9\nhalf and half\n"
        );
        // The stream filter first, then the tail.
        assert_eq!(read(&dir, Some(2), false).await, "out 9\nhalf and half\n");
        assert_eq!(read(&dir, Some(0), true).await, "");
        let all = read(&dir, None, true).await;
        assert_eq!(read(&dir, Some(1000), true).await, all);
        assert!(all.starts_with("out 0\nerr 0\n"), "{all}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
