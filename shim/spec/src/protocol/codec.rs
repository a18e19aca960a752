//! Framing: each frame is a little-endian `u32` length, then that many bytes of one encoded
//! message. The shim (blocking and epoll-driven reads) and the driver (tokio reads) both split
//! frames with [`frame_len`] and [`decode_body`]; nothing else parses a frame.

use std::io::{self, Read, Write};

use prost::Message;

use super::{response, Output, Response, Stream};

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 8 << 20;

/// The body length a frame header announces; an error above [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> io::Result<usize> {
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    Ok(len)
}

/// Decodes a frame's body. Given a `Bytes`, bytes fields are sliced from it, not copied.
pub fn decode_body<M: Message + Default>(body: impl bytes::Buf) -> io::Result<M> {
    M::decode(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Encodes `msg` as one frame.
pub fn encode_frame(msg: &impl Message) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    // Encoding into a Vec cannot run out of room.
    msg.encode(&mut buf).expect("Vec grows as needed");
    buf
}

/// The field numbers of `Response.output`, `Output.stream` and `Output.data` in shim.proto;
/// `output_frames_match_the_generated_encoding` proves them against the generated code.
const RESPONSE_OUTPUT: u32 = 5;
const OUTPUT_STREAM: u32 = 1;
const OUTPUT_DATA: u32 = 2;

/// Appends one frame holding `Response { Output { stream, data } }` to `out`, encoded directly:
/// the output hot path, which copies `data` once (into `out`) and builds no message.
pub fn append_output_frame(out: &mut Vec<u8>, stream: Stream, data: &[u8]) {
    out.reserve(OUTPUT_HEADER_MAX + data.len());
    append_output_header(out, stream, data.len());
    out.extend_from_slice(data);
}

/// The most bytes [`append_output_header`] writes.
pub const OUTPUT_HEADER_MAX: usize = 4 + 1 + 10 + 1 + 10 + 1 + 10;

/// The start of the frame [`append_output_frame`] writes, all but the `data_len` bytes of
/// output that follow it: for writing the output itself from where it is (writev).
pub fn append_output_header(out: &mut Vec<u8>, stream: Stream, data_len: usize) {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
    let stream_value = stream as i32 as u64;
    let stream_len = if stream_value != 0 {
        1 + encoded_len_varint(stream_value)
    } else {
        0
    };
    let data_field_len = if data_len == 0 {
        0
    } else {
        1 + encoded_len_varint(data_len as u64) + data_len
    };
    let inner = stream_len + data_field_len;
    let outer = 1 + encoded_len_varint(inner as u64) + inner;
    out.extend_from_slice(&(outer as u32).to_le_bytes());
    encode_key(RESPONSE_OUTPUT, WireType::LengthDelimited, out);
    encode_varint(inner as u64, out);
    if stream_value != 0 {
        encode_key(OUTPUT_STREAM, WireType::Varint, out);
        encode_varint(stream_value, out);
    }
    if data_len != 0 {
        encode_key(OUTPUT_DATA, WireType::LengthDelimited, out);
        encode_varint(data_len as u64, out);
    }
}

/// The generated message [`append_output_frame`] stands for.
pub fn output_response(stream: Stream, data: bytes::Bytes) -> Response {
    Response {
        kind: Some(response::Kind::Output(Output {
            stream: stream as i32,
            data,
        })),
    }
}

/// Writes one frame to a blocking writer.
pub fn write_frame(w: &mut impl Write, msg: &impl Message) -> io::Result<()> {
    w.write_all(&encode_frame(msg))
}

/// Reads one frame from a blocking reader; `None` at a clean end of stream.
pub fn read_frame<M: Message + Default>(r: &mut impl Read) -> io::Result<Option<M>> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = frame_len(header)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    decode_body(buf.as_slice()).map(Some)
}

/// Splits a byte stream read in pieces into frames.
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, if one has arrived.
    pub fn next_frame<M: Message + Default>(&mut self) -> io::Result<Option<M>> {
        let Some(header) = self.buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = frame_len(*header)?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = decode_body(&self.buf[4..4 + len])?;
        self.buf.drain(..4 + len);
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{request, Kill, Request};
    use super::*;

    /// The header alone, then the output, is the whole frame (the shim's writev path).
    #[test]
    fn the_output_header_and_the_data_are_the_frame() {
        for stream in [Stream::Stdout, Stream::Stderr] {
            for data in [&b""[..], b"x", &[7u8; 300][..], &vec![1u8; 70_000][..]] {
                let mut whole = Vec::new();
                append_output_frame(&mut whole, stream, data);
                let mut split = Vec::new();
                append_output_header(&mut split, stream, data.len());
                assert!(split.len() <= OUTPUT_HEADER_MAX);
                split.extend_from_slice(data);
                assert_eq!(whole, split);
            }
        }
    }

    #[test]
    fn frames_round_trip_in_pieces() {
        let a = Request::new(request::Kind::Kill(Kill {
            signal: 9,
            all: true,
            exec_id: String::new(),
        }));
        let b = Request::new(request::Kind::Stdin(b"hello".to_vec()));
        let mut bytes = encode_frame(&a);
        bytes.extend(encode_frame(&b));
        let mut dec = FrameDecoder::default();
        let mut got = Vec::new();
        for chunk in bytes.chunks(3) {
            dec.push(chunk);
            while let Some(m) = dec.next_frame::<Request>().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![a.clone(), b]);
        let mut cursor = io::Cursor::new(encode_frame(&a));
        assert_eq!(read_frame::<Request>(&mut cursor).unwrap(), Some(a));
        assert_eq!(read_frame::<Request>(&mut cursor).unwrap(), None);
    }

    #[test]
    fn output_frames_match_the_generated_encoding() {
        for (stream, data) in [
            (Stream::Stdout, vec![1u8, 2, 3]),
            (Stream::Stderr, vec![7u8; 300_000]),
            (Stream::Stdout, vec![]),
        ] {
            let mut direct = Vec::new();
            append_output_frame(&mut direct, stream, &data);
            let msg = output_response(stream, data.clone().into());
            assert_eq!(direct, encode_frame(&msg), "byte for byte");
            let mut dec = FrameDecoder::default();
            dec.push(&direct);
            assert_eq!(dec.next_frame::<Response>().unwrap(), Some(msg));
        }
    }

    #[test]
    fn oversized_frame_is_refused() {
        let mut dec = FrameDecoder::default();
        dec.push(&u32::MAX.to_le_bytes());
        assert!(dec.next_frame::<Request>().is_err());
        assert!(frame_len(u32::MAX.to_le_bytes()).is_err());
    }
}
