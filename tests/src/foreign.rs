//! Clients that are not ours, as the daemon meets them: a minimal HTTP/2 client written from
//! RFC 9113 and RFC 7541 (its requests hand-encoded as HPACK literals, so they carry exactly
//! the pseudo-headers a test names, such as a socket path as `:authority`, which no Rust HTTP/2
//! client will send; its responses decoded by an HPACK decoder of its own, Huffman included, so
//! nothing of the h2 under test checks h2), and the check that Python's grpcio is installed.

use std::collections::{HashMap, VecDeque};
use std::io::{Error, ErrorKind, Read, Result, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// What came back for the one request of a connection (stream 1).
#[derive(Debug, Default)]
pub struct Exchange {
    /// The stream's header blocks, decoded: the response headers, then any trailers.
    pub header_blocks: Vec<Vec<(String, String)>>,
    /// The stream's DATA, concatenated.
    pub data: Vec<u8>,
    /// The error code of a RST_STREAM on the stream (1 is PROTOCOL_ERROR).
    pub reset: Option<u32>,
    /// The error code of a GOAWAY.
    pub goaway: Option<u32>,
    /// The server ended the stream (END_STREAM).
    pub ended: bool,
}

impl Exchange {
    /// The value of `name` in header block `block`.
    pub fn header(&self, block: usize, name: &str) -> Option<&str> {
        let fields = self.header_blocks.get(block)?;
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The response's `:status`.
    pub fn status(&self) -> Option<&str> {
        self.header(0, ":status")
    }

    /// `grpc-status` from the trailers (the last header block; the only one of a
    /// trailers-only answer).
    pub fn grpc_status(&self) -> Option<&str> {
        self.header(self.header_blocks.len().checked_sub(1)?, "grpc-status")
    }

    /// The gRPC messages in the DATA (each behind its 5-byte prefix).
    pub fn grpc_messages(&self) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = &self.data[..];
        while rest.len() >= 5 {
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let end = (5 + len).min(rest.len());
            out.push(&rest[5..end]);
            rest = &rest[end..];
        }
        out
    }
}

/// A gRPC unary call on a new connection: `message` (protobuf bytes) to `path` (e.g.
/// `/execdriver.v1.ExecDriver/Info`) with `authority` as `:authority`.
pub fn grpc_unary(socket: &Path, authority: &str, path: &str, message: &[u8]) -> Result<Exchange> {
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    request(
        socket,
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
        &body,
    )
}

/// Sends one request on stream 1 of a new connection to `socket`: a HEADERS frame with
/// `headers` in this order, each a literal without indexing (RFC 7541 6.2.2; the name by its
/// static-table index when it has one), then `body` in a DATA frame that ends the stream.
/// Reads until the stream ends or is reset, or the connection goes away.
pub fn request(socket: &Path, headers: &[(&str, &str)], body: &[u8]) -> Result<Exchange> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut block = Vec::new();
    for (name, value) in headers {
        encode_literal(&mut block, name, value);
    }
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    frame(&mut out, HEADERS, END_HEADERS, 1, &block);
    frame(&mut out, DATA, END_STREAM, 1, body);
    s.write_all(&out)?;

    let mut ex = Exchange::default();
    let mut decoder = Decoder::new();
    // A header block still arriving in CONTINUATION frames, and whether it ends the stream.
    let mut fragments: Option<(Vec<u8>, bool)> = None;
    loop {
        let (ty, flags, id, payload) = match read_frame(&mut s) {
            Ok(f) => f,
            // The server closed the connection: what came before is the answer.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(ex),
            Err(e) => return Err(e),
        };
        match ty {
            DATA if id == 1 => {
                ex.data.extend_from_slice(unpad(flags, &payload)?);
                if flags & END_STREAM != 0 {
                    ex.ended = true;
                    return Ok(ex);
                }
            }
            HEADERS if id == 1 => {
                let mut p = unpad(flags, &payload)?;
                if flags & PRIORITY != 0 {
                    p = p.get(5..).ok_or_else(|| bad("short HEADERS"))?;
                }
                fragments = Some((p.to_vec(), flags & END_STREAM != 0));
            }
            CONTINUATION if id == 1 => match &mut fragments {
                Some((block, _)) => block.extend_from_slice(&payload),
                None => return Err(bad("CONTINUATION without HEADERS")),
            },
            RST_STREAM if id == 1 => {
                ex.reset = Some(u32_at(&payload, 0)?);
                return Ok(ex);
            }
            SETTINGS if flags & ACK == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                s.write_all(&ack)?;
            }
            PING if flags & ACK == 0 => {
                let mut pong = Vec::new();
                frame(&mut pong, PING, ACK, 0, &payload);
                s.write_all(&pong)?;
            }
            GOAWAY => {
                ex.goaway = Some(u32_at(&payload, 4)?);
                return Ok(ex);
            }
            _ => {}
        }
        if (ty == HEADERS || ty == CONTINUATION) && id == 1 && flags & END_HEADERS != 0 {
            let (block, ends) = fragments.take().unwrap_or_default();
            ex.header_blocks.push(decoder.decode(&block)?);
            if ends {
                ex.ended = true;
                return Ok(ex);
            }
        }
    }
}

fn bad(what: &str) -> Error {
    Error::new(ErrorKind::InvalidData, what.to_string())
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    let b = b.get(at..at + 4).ok_or_else(|| bad("short frame"))?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn frame(out: &mut Vec<u8>, ty: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

fn read_frame(s: &mut UnixStream) -> Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head)?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0; len];
    s.read_exact(&mut payload)?;
    Ok((head[3], head[4], id, payload))
}

/// A DATA or HEADERS payload without its padding.
fn unpad(flags: u8, p: &[u8]) -> Result<&[u8]> {
    if flags & PADDED == 0 {
        return Ok(p);
    }
    let pad = *p.first().ok_or_else(|| bad("short padded frame"))? as usize;
    p.get(1..p.len().saturating_sub(pad))
        .ok_or_else(|| bad("padding longer than the frame"))
}

/// The static table (RFC 7541 Appendix A), index 1 first.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// An integer with an N-bit prefix (RFC 7541 5.1); `first` holds the representation's bits.
fn encode_int(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut v: usize) {
    let max = (1usize << prefix_bits) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A literal header field without indexing, the value a plain (not Huffman) string.
fn encode_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    match STATIC.iter().position(|(n, _)| *n == name) {
        Some(i) => encode_int(out, 0x00, 4, i + 1),
        None => {
            out.push(0x00);
            encode_int(out, 0x00, 7, name.len());
            out.extend_from_slice(name.as_bytes());
        }
    }
    encode_int(out, 0x00, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// An HPACK decoder: the static table, a dynamic table of the connection, Huffman strings.
struct Decoder {
    table: VecDeque<(String, String)>,
    size: usize,
    max: usize,
}

impl Decoder {
    fn new() -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: 4096,
        }
    }

    fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>> {
        let mut fields = Vec::new();
        let mut pos = 0;
        while let Some(&b) = block.get(pos) {
            if b & 0x80 != 0 {
                // Indexed field.
                let i = decode_int(block, &mut pos, 7)?;
                fields.push(self.entry(i)?);
            } else if b & 0xc0 == 0x40 {
                // Literal with incremental indexing.
                let field = self.literal(block, &mut pos, 6)?;
                self.insert(field.clone());
                fields.push(field);
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update.
                self.max = decode_int(block, &mut pos, 5)?;
                self.evict();
            } else {
                // Literal without indexing, or never indexed.
                fields.push(self.literal(block, &mut pos, 4)?);
            }
        }
        Ok(fields)
    }

    fn literal(&self, block: &[u8], pos: &mut usize, prefix: u32) -> Result<(String, String)> {
        let i = decode_int(block, pos, prefix)?;
        let name = match i {
            0 => text(decode_string(block, pos)?)?,
            i => self.entry(i)?.0,
        };
        Ok((name, text(decode_string(block, pos)?)?))
    }

    fn entry(&self, i: usize) -> Result<(String, String)> {
        match i {
            1..=61 => {
                let (n, v) = STATIC[i - 1];
                Ok((n.to_string(), v.to_string()))
            }
            _ => self
                .table
                .get(i.wrapping_sub(62))
                .cloned()
                .ok_or_else(|| bad("HPACK index out of range")),
        }
    }

    fn insert(&mut self, field: (String, String)) {
        self.size += field.0.len() + field.1.len() + 32;
        self.table.push_front(field);
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => break,
            }
        }
    }
}

fn text(b: Vec<u8>) -> Result<String> {
    String::from_utf8(b).map_err(|_| bad("a header that is not UTF-8"))
}

fn decode_int(block: &[u8], pos: &mut usize, prefix_bits: u32) -> Result<usize> {
    let max = (1usize << prefix_bits) - 1;
    let first = *block.get(*pos).ok_or_else(|| bad("short HPACK integer"))? as usize & max;
    *pos += 1;
    if first < max {
        return Ok(first);
    }
    let (mut v, mut shift) = (max, 0);
    loop {
        let b = *block.get(*pos).ok_or_else(|| bad("short HPACK integer"))? as usize;
        *pos += 1;
        v += (b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        if shift > 28 {
            return Err(bad("HPACK integer too large"));
        }
    }
}

fn decode_string(block: &[u8], pos: &mut usize) -> Result<Vec<u8>> {
    let huffman = block.get(*pos).is_some_and(|b| b & 0x80 != 0);
    let len = decode_int(block, pos, 7)?;
    let s = block
        .get(*pos..*pos + len)
        .ok_or_else(|| bad("short HPACK string"))?;
    *pos += len;
    if huffman {
        huffman_decode(s)
    } else {
        Ok(s.to_vec())
    }
}

/// The length in bits of each symbol's code (RFC 7541 Appendix B; 256 is EOS). The code is
/// canonical: the codes themselves follow from the lengths.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// (length, code) -> symbol, built from the lengths: shorter codes first, then by symbol.
fn huffman_codes() -> HashMap<(u8, u32), u16> {
    let mut order: Vec<u16> = (0..257).collect();
    order.sort_by_key(|&s| (HUFFMAN_LENGTHS[s as usize], s));
    let mut codes = HashMap::new();
    let (mut code, mut prev) = (0u32, HUFFMAN_LENGTHS[order[0] as usize]);
    for (k, &s) in order.iter().enumerate() {
        let len = HUFFMAN_LENGTHS[s as usize];
        if k > 0 {
            code = (code + 1) << (len - prev);
        }
        prev = len;
        codes.insert((len, code), s);
    }
    codes
}

fn huffman_decode(bytes: &[u8]) -> Result<Vec<u8>> {
    let codes = huffman_codes();
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u8);
    for byte in bytes {
        for shift in (0..8).rev() {
            acc = (acc << 1) | u32::from((byte >> shift) & 1);
            bits += 1;
            match codes.get(&(bits, acc)) {
                Some(256) => return Err(bad("EOS in a Huffman string")),
                Some(&s) => {
                    out.push(s as u8);
                    (acc, bits) = (0, 0);
                }
                None if bits >= 30 => return Err(bad("no such Huffman code")),
                None => {}
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    if bits > 7 || acc != (1 << bits) - 1 {
        return Err(bad("bad Huffman padding"));
    }
    Ok(out)
}

/// Panics, saying what to install, unless python3 can import `modules` (e.g. "grpc").
pub fn require_python(modules: &str) {
    let probe = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output();
    match probe {
        Err(e) => panic!("python3 is missing ({e}); scripts/test.sh installs what the tests need"),
        Ok(o) if !o.status.success() => panic!(
            "python3 lacks {modules} (`python3 -m pip install grpcio grpcio-tools`; \
             scripts/test.sh does it): {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_examples_of_rfc_7541_decode() {
        // C.4.1: a request with Huffman strings.
        let block = [
            0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
            0x90, 0xf4, 0xff,
        ];
        let mut d = Decoder::new();
        let fields = d.decode(&block).unwrap();
        let want = [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ];
        assert_eq!(
            fields,
            want.map(|(n, v)| (n.to_string(), v.to_string())).to_vec()
        );
        // C.4.2: the same connection, the authority now from the dynamic table.
        let block = [
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
        ];
        let fields = d.decode(&block).unwrap();
        assert_eq!(fields[3].1, "www.example.com");
        assert_eq!(fields[4], ("cache-control".into(), "no-cache".into()));
    }

    #[test]
    fn literals_round_trip() {
        let mut block = Vec::new();
        let long = "x".repeat(300);
        encode_literal(&mut block, ":authority", "/run/x.sock");
        encode_literal(&mut block, "content-type", "application/grpc");
        encode_literal(&mut block, "te", &long);
        let fields = Decoder::new().decode(&block).unwrap();
        assert_eq!(fields[0], (":authority".into(), "/run/x.sock".into()));
        assert_eq!(
            fields[1],
            ("content-type".into(), "application/grpc".into())
        );
        assert_eq!(fields[2], ("te".into(), long));
    }
}
