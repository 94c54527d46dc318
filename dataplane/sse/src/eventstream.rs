//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), as Bedrock's
//! `ConverseStream` and `InvokeModelWithResponseStream` answer.
//!
//! A message is:
//!
//! ```text
//! +-----------------+------------------+------------------+
//! | total len (u32) | headers len (u32)| prelude CRC (u32)|   prelude: 12 bytes, big-endian
//! +-----------------+------------------+------------------+
//! | headers (headers len bytes)                           |
//! | payload (total len - headers len - 16 bytes)          |
//! +-------------------------------------------------------+
//! | message CRC (u32): CRC-32 of every byte before it     |
//! +-------------------------------------------------------+
//! ```
//!
//! and a header is `name len (u8) | name | type (u8) | value`, the value by type: 0 true, 1 false
//! (no bytes), 2 byte (i8), 3 short (i16), 4 integer (i32), 5 long (i64), 6 byte array (u16 length +
//! bytes), 7 string (u16 length + UTF-8), 8 timestamp (i64 milliseconds since the epoch), 9 UUID
//! (16 bytes). All integers are big-endian.
//!
//! [`Decoder`] reads messages from arbitrary chunks, checking the prelude CRC as soon as the 12 bytes
//! are in (so a corrupt length never makes it wait for or buffer megabytes), then the lengths, the
//! limit, the message CRC and every header. A message that lies within one chunk is reported
//! borrowed from it; only messages split across chunks are assembled in a buffer.

use crate::crc32::{crc32, Crc32};
use crate::error::{Error, Result};

/// Default bound on one message's total length: 16 MiB, the limit of the AWS SDKs.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;

/// Bytes of the prelude (total length, headers length, prelude CRC).
pub const PRELUDE_LEN: usize = 12;

/// Bytes of framing around headers and payload: the prelude and the message CRC.
pub const OVERHEAD: usize = PRELUDE_LEN + 4;

/// Buffers larger than this are released after the message that grew them.
const KEEP_CAPACITY: usize = 16 << 10;

// === impl HeaderValue ===

/// A header value, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// Types 0 (true) and 1 (false).
    Bool(bool),
    /// Type 2: a signed byte.
    Byte(i8),
    /// Type 3: a 16-bit integer.
    Short(i16),
    /// Type 4: a 32-bit integer.
    Int(i32),
    /// Type 5: a 64-bit integer.
    Long(i64),
    /// Type 6: a byte array of up to 65,535 bytes.
    Bytes(&'a [u8]),
    /// Type 7: a UTF-8 string of up to 65,535 bytes.
    String(&'a str),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9: a UUID's 16 bytes.
    Uuid([u8; 16]),
}

impl<'a> HeaderValue<'a> {
    /// The string, when this is a string header.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The wire type byte.
    pub fn type_byte(&self) -> u8 {
        match self {
            HeaderValue::Bool(true) => 0,
            HeaderValue::Bool(false) => 1,
            HeaderValue::Byte(_) => 2,
            HeaderValue::Short(_) => 3,
            HeaderValue::Int(_) => 4,
            HeaderValue::Long(_) => 5,
            HeaderValue::Bytes(_) => 6,
            HeaderValue::String(_) => 7,
            HeaderValue::Timestamp(_) => 8,
            HeaderValue::Uuid(_) => 9,
        }
    }
}

/// One header of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name (1 to 255 bytes on the wire; AWS uses names like `:event-type`).
    pub name: &'a str,
    /// The value.
    pub value: HeaderValue<'a>,
}

impl<'a> Header<'a> {
    /// A header.
    pub fn new(name: &'a str, value: HeaderValue<'a>) -> Self {
        Header { name, value }
    }
}

/// Read one header from the front of `buf`: the header and the bytes after it.
fn read_header(buf: &[u8]) -> Result<(Header<'_>, &[u8])> {
    let short = Error::BadHeader("length past the end of the headers");
    let (&name_len, rest) = buf.split_first().ok_or(short.clone())?;
    let name_len = name_len as usize;
    if name_len == 0 {
        return Err(Error::BadHeader("empty name"));
    }
    let (name, rest) = rest.split_at_checked(name_len).ok_or(short.clone())?;
    let name = std::str::from_utf8(name).map_err(|_| Error::BadHeader("name is not UTF-8"))?;
    let (&ty, rest) = rest.split_first().ok_or(short.clone())?;
    fn fixed<const N: usize>(rest: &[u8], short: Error) -> Result<([u8; N], &[u8])> {
        let (v, rest) = rest.split_first_chunk::<N>().ok_or(short)?;
        Ok((*v, rest))
    }
    let (value, rest) = match ty {
        0 => (HeaderValue::Bool(true), rest),
        1 => (HeaderValue::Bool(false), rest),
        2 => {
            let (v, rest) = fixed::<1>(rest, short)?;
            (HeaderValue::Byte(i8::from_be_bytes(v)), rest)
        }
        3 => {
            let (v, rest) = fixed::<2>(rest, short)?;
            (HeaderValue::Short(i16::from_be_bytes(v)), rest)
        }
        4 => {
            let (v, rest) = fixed::<4>(rest, short)?;
            (HeaderValue::Int(i32::from_be_bytes(v)), rest)
        }
        5 => {
            let (v, rest) = fixed::<8>(rest, short)?;
            (HeaderValue::Long(i64::from_be_bytes(v)), rest)
        }
        6 | 7 => {
            let (len, rest) = fixed::<2>(rest, short.clone())?;
            let (v, rest) = rest
                .split_at_checked(u16::from_be_bytes(len) as usize)
                .ok_or(short)?;
            if ty == 6 {
                (HeaderValue::Bytes(v), rest)
            } else {
                let s = std::str::from_utf8(v)
                    .map_err(|_| Error::BadHeader("string value is not UTF-8"))?;
                (HeaderValue::String(s), rest)
            }
        }
        8 => {
            let (v, rest) = fixed::<8>(rest, short)?;
            (HeaderValue::Timestamp(i64::from_be_bytes(v)), rest)
        }
        9 => {
            let (v, rest) = fixed::<16>(rest, short)?;
            (HeaderValue::Uuid(v), rest)
        }
        _ => return Err(Error::BadHeader("unknown value type")),
    };
    Ok((Header { name, value }, rest))
}

// === impl Message ===

/// One decoded, validated message, borrowed from the chunk or the decoder's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    headers: &'a [u8],
    payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// Validate one complete message (`buf` is exactly its `total length` bytes).
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>> {
        let (total, headers_len) = check_prelude(buf, usize::MAX)?;
        if buf.len() != total {
            return Err(Error::Truncated);
        }
        let (body, crc) = buf.split_at(total - 4);
        let sent = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed = crc32(body);
        if sent != computed {
            return Err(Error::MessageCrc { sent, computed });
        }
        let headers = &body[PRELUDE_LEN..PRELUDE_LEN + headers_len];
        let mut rest = headers;
        while !rest.is_empty() {
            rest = read_header(rest)?.1;
        }
        Ok(Message {
            headers,
            payload: &body[PRELUDE_LEN + headers_len..],
        })
    }

    /// The headers, in wire order.
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.headers }
    }

    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<HeaderValue<'a>> {
        self.headers().find(|h| h.name == name).map(|h| h.value)
    }

    /// The first string header with this name.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| v.as_str())
    }

    /// `:message-type`: `event`, `exception` or `error`.
    pub fn message_type(&self) -> Option<&'a str> {
        self.header_str(":message-type")
    }

    /// `:event-type`, e.g. `contentBlockDelta` or `metadata` in a Bedrock `ConverseStream`.
    pub fn event_type(&self) -> Option<&'a str> {
        self.header_str(":event-type")
    }

    /// `:exception-type`, e.g. `throttlingException`, on exception messages.
    pub fn exception_type(&self) -> Option<&'a str> {
        self.header_str(":exception-type")
    }

    /// `:content-type` of the payload, e.g. `application/json`.
    pub fn content_type(&self) -> Option<&'a str> {
        self.header_str(":content-type")
    }

    /// The payload.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The raw header bytes (already validated).
    pub fn raw_headers(&self) -> &'a [u8] {
        self.headers
    }
}

/// Iterator over a validated message's headers.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        // The bytes were validated when the message was decoded, so this never fails; if it did,
        // ending the iteration is the safe answer.
        match read_header(self.rest) {
            Ok((h, rest)) => {
                self.rest = rest;
                Some(h)
            }
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

/// Check the prelude at the front of `buf` (at least 12 bytes): its CRC, then the lengths and the
/// limit. Returns (total length, headers length).
fn check_prelude(buf: &[u8], max: usize) -> Result<(usize, usize)> {
    let Some(p) = buf.first_chunk::<PRELUDE_LEN>() else {
        return Err(Error::Truncated);
    };
    let total = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    let headers = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    let sent = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
    let computed = crc32(&p[..8]);
    if sent != computed {
        return Err(Error::PreludeCrc { sent, computed });
    }
    if (total as usize) < OVERHEAD {
        return Err(Error::MessageTooShort(total));
    }
    if total as usize > max {
        return Err(Error::MessageTooLarge {
            len: total,
            limit: max,
        });
    }
    if headers as u64 > total as u64 - OVERHEAD as u64 {
        return Err(Error::HeadersLength { headers, total });
    }
    Ok((total as usize, headers as usize))
}

// === impl Decoder ===

/// Incremental event-stream decoder. Feed it the response body chunk by chunk, split anywhere.
///
/// ```
/// use weir_sse::eventstream::{encode, Decoder, Header, HeaderValue};
///
/// let mut wire = Vec::new();
/// let headers = [
///     Header::new(":message-type", HeaderValue::String("event")),
///     Header::new(":event-type", HeaderValue::String("messageStop")),
/// ];
/// encode(&headers, br#"{"stopReason":"end_turn"}"#, &mut wire).unwrap();
///
/// let mut decoder = Decoder::new();
/// let mut types = Vec::new();
/// decoder.feed(&wire[..7], |m| types.push(m.event_type().map(str::to_owned))).unwrap();
/// decoder.feed(&wire[7..], |m| types.push(m.event_type().map(str::to_owned))).unwrap();
/// assert_eq!(types, [Some("messageStop".to_owned())]);
/// decoder.finish().unwrap();
/// ```
#[derive(Debug)]
pub struct Decoder {
    max: usize,
    buf: Vec<u8>,
    /// Total length of the message being assembled in `buf`, once its prelude is checked.
    need: Option<usize>,
    failed: Option<Error>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub fn new() -> Self {
        Self::with_max_message_size(DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// A decoder that refuses messages whose total length exceeds `max` bytes.
    pub fn with_max_message_size(max: usize) -> Self {
        Decoder {
            max,
            buf: Vec::new(),
            need: None,
            failed: None,
        }
    }

    /// Whether part of a message is held (the stream is between messages only when false).
    pub fn in_message(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The end of the stream: [`Error::Truncated`] if it ended inside a message. The decoder is
    /// reset either way.
    pub fn finish(&mut self) -> Result<()> {
        let r = match &self.failed {
            Some(e) => Err(e.clone()),
            None if self.in_message() => Err(Error::Truncated),
            None => Ok(()),
        };
        self.buf.clear();
        self.need = None;
        self.failed = None;
        r
    }

    /// Decode one chunk, calling `on_message` for every message it completes, in order.
    ///
    /// On error the decoder stays failed: the messages before the bad one were reported, and every
    /// later call returns the same error.
    pub fn feed(&mut self, chunk: &[u8], mut on_message: impl FnMut(Message<'_>)) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.decode(chunk, &mut on_message);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn decode(&mut self, mut input: &[u8], on_message: &mut impl FnMut(Message<'_>)) -> Result<()> {
        while !input.is_empty() {
            if self.buf.is_empty() {
                // Fast path: whole messages straight from the chunk.
                if input.len() < PRELUDE_LEN {
                    self.buf.extend_from_slice(input);
                    return Ok(());
                }
                let (total, _) = check_prelude(input, self.max)?;
                if input.len() < total {
                    // Grown as bytes arrive, not reserved: a prelude alone must not cost 16 MiB.
                    self.need = Some(total);
                    self.buf.extend_from_slice(input);
                    return Ok(());
                }
                let (msg, rest) = input.split_at(total);
                on_message(Message::parse(msg)?);
                input = rest;
                continue;
            }
            let need = match self.need {
                Some(n) => n,
                None => {
                    let take = (PRELUDE_LEN - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.buf.len() < PRELUDE_LEN {
                        return Ok(());
                    }
                    let (total, _) = check_prelude(&self.buf, self.max)?;
                    self.need = Some(total);
                    total
                }
            };
            let take = (need - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() < need {
                return Ok(());
            }
            on_message(Message::parse(&self.buf)?);
            self.buf.clear();
            self.need = None;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        }
        Ok(())
    }
}

// === encoder ===

/// Append one message with these headers and payload to `out`.
///
/// Fails (writing nothing) when a header name is empty or longer than 255 bytes, a string or byte
/// array value is longer than 65,535 bytes, or the message would exceed `u32::MAX` bytes.
pub fn encode(headers: &[Header<'_>], payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let mut headers_len = 0usize;
    for h in headers {
        if h.name.is_empty() || h.name.len() > 255 {
            return Err(Error::Encode("header name must be 1 to 255 bytes"));
        }
        let value_len = match h.value {
            HeaderValue::Bool(_) => 0,
            HeaderValue::Byte(_) => 1,
            HeaderValue::Short(_) => 2,
            HeaderValue::Int(_) => 4,
            HeaderValue::Long(_) | HeaderValue::Timestamp(_) => 8,
            HeaderValue::Bytes(b) => 2 + b.len(),
            HeaderValue::String(s) => 2 + s.len(),
            HeaderValue::Uuid(_) => 16,
        };
        if value_len > 2 + u16::MAX as usize {
            return Err(Error::Encode("header value longer than 65535 bytes"));
        }
        headers_len += 1 + h.name.len() + 1 + value_len;
    }
    let total = headers_len + payload.len() + OVERHEAD;
    let (Ok(total32), Ok(headers32)) = (u32::try_from(total), u32::try_from(headers_len)) else {
        return Err(Error::Encode("message longer than 4 GiB"));
    };
    let start = out.len();
    out.reserve(total);
    out.extend_from_slice(&total32.to_be_bytes());
    out.extend_from_slice(&headers32.to_be_bytes());
    let prelude_crc = crc32(&out[start..start + 8]);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    for h in headers {
        out.push(h.name.len() as u8);
        out.extend_from_slice(h.name.as_bytes());
        out.push(h.value.type_byte());
        match h.value {
            HeaderValue::Bool(_) => {}
            HeaderValue::Byte(v) => out.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Short(v) => out.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Int(v) => out.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Long(v) | HeaderValue::Timestamp(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
            HeaderValue::Bytes(b) => {
                out.extend_from_slice(&(b.len() as u16).to_be_bytes());
                out.extend_from_slice(b);
            }
            HeaderValue::String(s) => {
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            HeaderValue::Uuid(u) => out.extend_from_slice(&u),
        }
    }
    out.extend_from_slice(payload);
    let mut crc = Crc32::new();
    crc.update(&out[start..]);
    out.extend_from_slice(&crc.finish().to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests;
