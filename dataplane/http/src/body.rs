//! Body framing on the fly: a [`BodyDecoder`] scans bytes as they arrive, says which ranges are
//! payload and where the message ends, and never copies. The proxy forwards the scanned bytes as they
//! are (framing included), so a chunked stream passes through unchanged and filters still see the
//! payload of every chunk.
//!
//! A decoder told to [`keep_trailers`](BodyDecoder::keep_trailers) (only where a filter reads
//! trailers) also keeps the trailer section of a chunked body, so the proxy can forward everything
//! before it as received and write the section anew; [`parse_trailers`] reads its fields.

use crate::error::{Error, Result};
use crate::head::BodyKind;
use crate::headers::{Headers, Span, Spans, HOP_BY_HOP};

/// Longest chunk-size line (size, extensions) and longest trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of the size.
    Size { digits: u8, value: u64 },
    /// After the size: optional whitespace and `;ext`, up to CR.
    Ext { value: u64 },
    /// Expecting the LF of the size line.
    SizeLf { value: u64 },
    /// Payload bytes left in this chunk.
    Data { left: u64 },
    /// Expecting CR after a chunk's payload.
    DataCr,
    /// Expecting LF after a chunk's payload.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// Expecting LF ending a trailer line.
    TrailerLf,
    /// Expecting the LF of the final empty line.
    FinalLf,
    /// The message ended.
    Done,
}

/// Scans a body; one per message.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    kind: BodyKind,
    /// Bytes of payload left (Length), or the chunk state (Chunked).
    left: u64,
    state: Chunk,
    line: usize,
    trailers: usize,
    payload: u64,
    /// The trailer section as received (its field lines and the final CRLF), when kept (only
    /// decoders on routes that read trailers; the others allocate nothing).
    kept: Option<Vec<u8>>,
}

/// What one call to [`BodyDecoder::scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Bytes of the input that belong to this message (the rest is the next message's).
    pub consumed: usize,
    /// The message ended within them.
    pub done: bool,
}

impl BodyDecoder {
    /// A decoder for a body of this kind.
    pub fn new(kind: BodyKind) -> Self {
        BodyDecoder {
            kind,
            left: match kind {
                BodyKind::Length(n) => n,
                _ => 0,
            },
            state: Chunk::Size {
                digits: 0,
                value: 0,
            },
            line: 0,
            trailers: 0,
            payload: 0,
            kept: None,
        }
    }

    /// Keeps the trailer section of a chunked body (bounded like every trailer section, 16 KiB
    /// of fields): its bytes still count as consumed by [`scan`](BodyDecoder::scan), and
    /// [`trailer_len`](BodyDecoder::trailer_len) tells how many of them were the section's. No
    /// effect on other framings, which have no trailers.
    pub fn keep_trailers(&mut self) {
        if self.kind == BodyKind::Chunked && self.kept.is_none() {
            self.kept = Some(Vec::new());
        }
    }

    /// Whether the trailer section is kept.
    pub fn keeps_trailers(&self) -> bool {
        self.kept.is_some()
    }

    /// Bytes of the trailer section kept so far: the field lines and, once the body is done, the
    /// final CRLF (so a body without trailers ends with a section of just `\r\n`). The last
    /// bytes a scan consumed are the section's when this grew during that scan: as many as it
    /// grew, all at the end.
    pub fn trailer_len(&self) -> usize {
        self.kept.as_ref().map_or(0, |k| k.len())
    }

    /// The trailer section kept (see [`trailer_len`](BodyDecoder::trailer_len)), taken out.
    pub fn take_trailers(&mut self) -> Vec<u8> {
        self.kept.as_mut().map_or_else(Vec::new, std::mem::take)
    }

    /// The framing being decoded.
    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    /// Whether scanning `n` more bytes surely ends the message: a length-delimited body whose
    /// remaining payload is all there (a chunked body's end is known only once its last chunk
    /// is read; a close-delimited body's, at the close).
    pub fn ends_within(&self, n: usize) -> bool {
        matches!(self.kind, BodyKind::Length(_)) && self.left <= n as u64
    }

    /// Payload bytes seen so far.
    pub fn payload_bytes(&self) -> u64 {
        self.payload
    }

    /// Whether the message has ended.
    pub fn is_done(&self) -> bool {
        match self.kind {
            BodyKind::Empty => true,
            BodyKind::Length(_) => self.left == 0,
            BodyKind::Chunked => self.state == Chunk::Done,
            BodyKind::UntilClose => false,
        }
    }

    /// Scans `buf`, calling `on_data` with each payload range, and returns how much of `buf` is this
    /// message's and whether it ended. An error is a framing error of whichever side sent the bytes.
    pub fn scan(
        &mut self,
        buf: &[u8],
        mut on_data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<Scan> {
        match self.kind {
            BodyKind::Empty => Ok(Scan {
                consumed: 0,
                done: true,
            }),
            BodyKind::UntilClose => {
                if !buf.is_empty() {
                    on_data(0..buf.len());
                }
                self.payload += buf.len() as u64;
                Ok(Scan {
                    consumed: buf.len(),
                    done: false,
                })
            }
            BodyKind::Length(_) => {
                let n = (self.left.min(buf.len() as u64)) as usize;
                if n > 0 {
                    on_data(0..n);
                }
                self.left -= n as u64;
                self.payload += n as u64;
                Ok(Scan {
                    consumed: n,
                    done: self.left == 0,
                })
            }
            BodyKind::Chunked => self.scan_chunked(buf, on_data),
        }
    }

    fn scan_chunked(
        &mut self,
        buf: &[u8],
        mut on_data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<Scan> {
        const BAD: Error = Error::BadRequest("invalid chunked encoding");
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            self.state = match self.state {
                Chunk::Size { digits, value } => match hex(b) {
                    Some(d) => {
                        if digits >= 15 {
                            return Err(BAD);
                        }
                        Chunk::Size {
                            digits: digits + 1,
                            value: value << 4 | d,
                        }
                    }
                    None if digits == 0 => return Err(BAD),
                    None if b == b'\r' => Chunk::SizeLf { value },
                    None if b == b';' || b == b' ' || b == b'\t' => {
                        self.line = 0;
                        Chunk::Ext { value }
                    }
                    None => return Err(BAD),
                },
                Chunk::Ext { value } => {
                    self.line += 1;
                    if self.line > MAX_CHUNK_LINE {
                        return Err(BAD);
                    }
                    match b {
                        b'\r' => Chunk::SizeLf { value },
                        b'\n' => return Err(BAD),
                        0x00..=0x08 | 0x0a..=0x1f | 0x7f => return Err(BAD),
                        _ => Chunk::Ext { value },
                    }
                }
                Chunk::SizeLf { value } => {
                    if b != b'\n' {
                        return Err(BAD);
                    }
                    if value == 0 {
                        self.trailers = 0;
                        Chunk::TrailerStart
                    } else {
                        Chunk::Data { left: value }
                    }
                }
                Chunk::Data { left } => {
                    let n = (left.min((buf.len() - i) as u64)) as usize;
                    on_data(i..i + n);
                    self.payload += n as u64;
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data { left }
                    };
                    continue;
                }
                Chunk::DataCr => {
                    if b != b'\r' {
                        return Err(BAD);
                    }
                    Chunk::DataLf
                }
                Chunk::DataLf => {
                    if b != b'\n' {
                        return Err(BAD);
                    }
                    Chunk::Size {
                        digits: 0,
                        value: 0,
                    }
                }
                Chunk::TrailerStart => {
                    self.keep(b);
                    match b {
                        b'\r' => Chunk::FinalLf,
                        b'\n' => return Err(BAD),
                        _ => {
                            self.trailers += 1;
                            Chunk::TrailerLine
                        }
                    }
                }
                Chunk::TrailerLine => {
                    self.trailers += 1;
                    if self.trailers > MAX_TRAILERS {
                        return Err(BAD);
                    }
                    self.keep(b);
                    match b {
                        b'\r' => Chunk::TrailerLf,
                        b'\n' => return Err(BAD),
                        _ => Chunk::TrailerLine,
                    }
                }
                Chunk::TrailerLf => {
                    if b != b'\n' {
                        return Err(BAD);
                    }
                    self.keep(b);
                    Chunk::TrailerStart
                }
                Chunk::FinalLf => {
                    if b != b'\n' {
                        return Err(BAD);
                    }
                    self.keep(b);
                    self.state = Chunk::Done;
                    return Ok(Scan {
                        consumed: i + 1,
                        done: true,
                    });
                }
                Chunk::Done => {
                    return Ok(Scan {
                        consumed: i,
                        done: true,
                    })
                }
            };
            i += 1;
        }
        Ok(Scan {
            consumed: i,
            done: self.state == Chunk::Done,
        })
    }
}

impl BodyDecoder {
    /// A byte of the trailer section, kept when asked (only trailer states call this).
    #[inline]
    fn keep(&mut self, b: u8) {
        if let Some(k) = self.kept.as_mut() {
            k.push(b);
        }
    }
}

/// Most fields of a trailer section (its bytes are bounded by the decoder).
const MAX_TRAILER_FIELDS: usize = 100;

/// The fields of a trailer section as a decoder kept it (`name: value` lines, then the final
/// CRLF), as spans of `section` (no copies). Field syntax is checked here (the decoder checks only
/// the line structure): an invalid field, or more than 100, is an error of whoever sent it.
pub fn parse_trailers(section: bytes::Bytes) -> Result<Headers> {
    const BAD: Error = Error::BadRequest("invalid trailer section");
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    let (len, parsed) = match httparse::parse_headers(&section, &mut fields) {
        Ok(httparse::Status::Complete((len, parsed))) => (len, parsed),
        _ => return Err(BAD),
    };
    if len != section.len() {
        return Err(BAD);
    }
    let base = section.as_ptr() as usize;
    let at = |p: &[u8]| p.as_ptr() as usize - base;
    let mut spans = Spans::new();
    for (i, f) in parsed.iter().enumerate() {
        let name = at(f.name.as_bytes());
        let value = at(f.value);
        // The line runs to the next field's name, or to the final CRLF.
        let line_end = parsed
            .get(i + 1)
            .map_or(section.len() - 2, |n| at(n.name.as_bytes()));
        spans.push(Span::new(
            name,
            name + f.name.len(),
            (value, value + f.value.len()),
            line_end,
        ));
    }
    Ok(Headers::raw(section, spans))
}

/// Fields that may never be sent as trailers (RFC 9110 §6.5.1): those about framing and the
/// connection (hop-by-hop, [`HOP_BY_HOP`]), routing (`host`) and the proxy's own authentication.
/// [`write_trailers`] drops them.
pub fn is_forbidden_trailer(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        || name.eq_ignore_ascii_case(b"host")
        || name.eq_ignore_ascii_case(b"proxy-authorization")
}

/// Writes a trailer section: each field that may be a trailer, then the final CRLF. Dropped, and
/// counted in the result: the fields [`is_forbidden_trailer`] names, and any field whose name is
/// not a token or whose value holds CR, LF or NUL (what could end the section early and smuggle a
/// message). Fields parsed by [`parse_trailers`] and left alone go out as received.
pub fn write_trailers(out: &mut Vec<u8>, trailers: &Headers) -> usize {
    let mut dropped = 0;
    let unsafe_field = |n: &[u8], v: &[u8]| {
        n.is_empty()
            || !n.iter().all(|b| is_tchar(*b))
            || v.iter().any(|b| matches!(b, b'\r' | b'\n' | 0))
    };
    if trailers
        .fields()
        .any(|(n, v)| is_forbidden_trailer(n) || unsafe_field(n, v))
    {
        // Rare: written field by field (the values are needed to judge).
        for (n, v) in trailers.fields() {
            if is_forbidden_trailer(n) || unsafe_field(n, v) {
                dropped += 1;
                continue;
            }
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
    } else {
        trailers.write_to(out);
    }
    out.extend_from_slice(b"\r\n");
    dropped
}

/// A character of a token (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some((b - b'0') as u64),
        b'a'..=b'f' => Some((b - b'a' + 10) as u64),
        b'A'..=b'F' => Some((b - b'A' + 10) as u64),
        _ => None,
    }
}

/// Writes a chunk header for `len` payload bytes (`len` 0 writes the last-chunk and end).
pub fn write_chunk_header(out: &mut Vec<u8>, len: usize) {
    if len == 0 {
        out.extend_from_slice(b"0\r\n\r\n");
        return;
    }
    let mut tmp = [0u8; 16];
    let mut n = len;
    let mut i = tmp.len();
    while n > 0 {
        i -= 1;
        tmp[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
    }
    out.extend_from_slice(&tmp[i..]);
    out.extend_from_slice(b"\r\n");
}
