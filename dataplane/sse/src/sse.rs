//! The incremental Server-Sent Events scanner.
//!
//! It follows the WHATWG HTML "Interpreting an event stream" algorithm on bytes (never decoding
//! UTF-8: the gateway forwards bytes, and the JSON inside is parsed later by whoever needs it):
//!
//! - a line ends with LF, CR, or CRLF, and a CRLF split across two chunks is still one line end;
//! - a UTF-8 BOM at the very start of the stream is skipped, once, even when split across chunks;
//! - a line starting with `:` is a comment; a line without `:` is a field name with an empty value;
//!   otherwise the name ends at the first `:` and one leading space of the value is stripped;
//! - `data` values are joined with `\n`; `event` sets the type; `id` sets the last event ID
//!   (ignored if it contains NUL; it persists across events); `retry` sets the reconnection time
//!   when it is all ASCII digits; other names are ignored;
//! - a blank line dispatches the event if at least one `data` line was seen, and resets the block;
//! - at the end of the stream an unfinished event is discarded ([`SseScanner::finish`] says so).
//!
//! Nothing is copied on the fast path: an event whose only `data` line lies in the current chunk is
//! reported with `data` borrowed from that chunk. Bytes are copied into the scanner's buffers only
//! when an event spans chunks or has several `data` lines; those buffers are reused across events
//! and bounded by [`SseScanner::with_max_event_size`].

use std::ops::Range;

use memchr::memchr2;

use crate::error::{Error, Result};

/// Default bound on one SSE line and on the joined `data` of one event: 4 MiB. Large enough for
/// the biggest single events LLM APIs send (a tool call's whole arguments, a partial image in
/// base64), small enough that a hostile upstream cannot make a connection hold much memory.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 4 << 20;

/// Buffers larger than this are released after the event that grew them, so an idle streaming
/// connection keeps only a few KiB.
const KEEP_CAPACITY: usize = 4096;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Where a field value of the event being assembled lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not set in this block.
    Unset,
    /// A range of the chunk being fed (only valid during one `feed` call).
    Chunk(usize, usize),
    /// In the scanner's own buffer.
    Buf,
}

/// Where the line being processed lives.
#[derive(Debug, Clone, Copy)]
enum Line {
    Chunk(usize, usize),
    Carry,
}

/// One dispatched SSE event. It borrows from the chunk passed to [`SseScanner::feed`] and from the
/// scanner, so it lives only for the callback.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    event: &'a [u8],
    data: &'a [u8],
    id: &'a [u8],
    retry: Option<u64>,
    span: Range<usize>,
    starts_in_chunk: bool,
    data_borrowed: bool,
}

impl<'a> Event<'a> {
    /// The event type: the last `event` field of the block, or `message` when there was none (or
    /// it was empty), as the spec's dispatch step says.
    pub fn event_type(&self) -> &'a [u8] {
        if self.event.is_empty() {
            b"message"
        } else {
            self.event
        }
    }

    /// The `event` field as sent, `None` when the block had none (or an empty one).
    pub fn event(&self) -> Option<&'a [u8]> {
        (!self.event.is_empty()).then_some(self.event)
    }

    /// The `data` lines joined with `\n` (without a trailing `\n`).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The last event ID of the stream at dispatch (it persists across events), `None` if it was
    /// never set or was set to the empty string.
    pub fn id(&self) -> Option<&'a [u8]> {
        (!self.id.is_empty()).then_some(self.id)
    }

    /// A valid `retry` field given in this event's block, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The bytes of the current chunk this event occupies: from the start of its first line (or 0
    /// when it began in an earlier chunk, see [`Event::starts_in_chunk`]) to just past the blank line
    /// that dispatched it. A filter that rewrites or hides events cuts the chunk at these offsets.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// Whether the event's first line lies in the current chunk.
    pub fn starts_in_chunk(&self) -> bool {
        self.starts_in_chunk
    }

    /// Whether [`Event::data`] points into the fed chunk (true) or into the scanner's buffer.
    pub fn data_is_borrowed(&self) -> bool {
        self.data_borrowed
    }
}

/// Incremental SSE parser. Feed it the response body chunk by chunk, split anywhere.
///
/// ```
/// use weir_sse::SseScanner;
///
/// let mut scanner = SseScanner::new();
/// let mut seen = Vec::new();
/// for chunk in [&b"event: ping\nda"[..], b"ta: {}\n\ndata: [DONE]\n\n"] {
///     scanner
///         .feed(chunk, |ev| seen.push((ev.event_type().to_vec(), ev.data().to_vec())))
///         .unwrap();
/// }
/// assert_eq!(seen[0], (b"ping".to_vec(), b"{}".to_vec()));
/// assert!(weir_sse::is_done(&seen[1].1));
/// ```
#[derive(Debug)]
pub struct SseScanner {
    max: usize,
    /// Bytes of the BOM matched so far; `None` once the start of the stream has been decided.
    bom: Option<u8>,
    /// The last chunk ended with CR: an LF at the start of the next one belongs to that line end.
    skip_lf: bool,
    /// The partial line carried over from earlier chunks.
    carry: Vec<u8>,
    /// A line of the current block has been seen (the block began before this point).
    in_block: bool,
    /// A field other than a comment has been seen in the current block.
    has_fields: bool,
    data: Slot,
    data_len: usize,
    data_buf: Vec<u8>,
    event: Slot,
    event_buf: Vec<u8>,
    last_id: Vec<u8>,
    retry: Option<u64>,
    reconnection_time: Option<u64>,
    failed: Option<Error>,
}

impl Default for SseScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl SseScanner {
    /// A scanner with [`DEFAULT_MAX_EVENT_SIZE`].
    pub fn new() -> Self {
        Self::with_max_event_size(DEFAULT_MAX_EVENT_SIZE)
    }

    /// A scanner that refuses any line, or any event's joined `data`, longer than `max` bytes.
    pub fn with_max_event_size(max: usize) -> Self {
        SseScanner {
            max,
            bom: Some(0),
            skip_lf: false,
            carry: Vec::new(),
            in_block: false,
            has_fields: false,
            data: Slot::Unset,
            data_len: 0,
            data_buf: Vec::new(),
            event: Slot::Unset,
            event_buf: Vec::new(),
            last_id: Vec::new(),
            retry: None,
            reconnection_time: None,
            failed: None,
        }
    }

    /// The configured bound.
    pub fn max_event_size(&self) -> usize {
        self.max
    }

    /// The reconnection time set by the last valid `retry` field of the stream, in milliseconds.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.reconnection_time
    }

    /// The last event ID buffer (empty if never set).
    pub fn last_event_id(&self) -> &[u8] {
        &self.last_id
    }

    /// Whether bytes of an unfinished event (or line) are held: the stream is between events only
    /// when this is false.
    pub fn in_event(&self) -> bool {
        self.in_block || !self.carry.is_empty()
    }

    /// Forget the stream (keeping the limit and the buffers' memory), to scan a new one.
    pub fn reset(&mut self) {
        let max = self.max;
        let mut carry = std::mem::take(&mut self.carry);
        let mut data_buf = std::mem::take(&mut self.data_buf);
        let mut event_buf = std::mem::take(&mut self.event_buf);
        let mut last_id = std::mem::take(&mut self.last_id);
        for b in [&mut carry, &mut data_buf, &mut event_buf, &mut last_id] {
            release(b);
        }
        *self = SseScanner {
            carry,
            data_buf,
            event_buf,
            last_id,
            ..SseScanner::with_max_event_size(max)
        };
    }

    /// The end of the stream. Per the spec an unfinished event is discarded; this returns
    /// [`Error::Truncated`] when one was (a partial line, or a block with fields but no blank line
    /// yet), so the gateway can tell a cut stream from a finished one. The scanner is reset.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let truncated = !self.carry.is_empty() || self.has_fields;
        self.reset();
        if truncated {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Scan one chunk, calling `on_event` for every event it completes, in order.
    ///
    /// On error (an over-long line or event) the scanner stays failed: the events before the
    /// offending one were reported, and every later call returns the same error.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(Event<'_>)) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.scan(chunk, &mut on_event);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn scan(&mut self, chunk: &[u8], on_event: &mut impl FnMut(Event<'_>)) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let mut pos = 0;
        if let Some(held) = self.bom {
            let mut matched = held as usize;
            while matched < 3 && pos < chunk.len() && chunk[pos] == BOM[matched] {
                matched += 1;
                pos += 1;
            }
            if matched == 3 {
                self.bom = None;
            } else if pos == chunk.len() {
                // Still a prefix of the BOM: decide with the next chunk.
                self.bom = Some(matched as u8);
                return Ok(());
            } else {
                // Not a BOM. The bytes held from earlier chunks are not line ends, so they are the
                // start of the first line; this chunk is scanned from its start.
                self.bom = None;
                self.push_carry(&BOM[..held as usize])?;
                pos = 0;
            }
        }
        if self.skip_lf {
            self.skip_lf = false;
            if chunk[pos] == b'\n' {
                pos += 1;
            }
        }
        let mut block_start = (!self.in_event()).then_some(pos);

        while pos < chunk.len() {
            let Some(off) = memchr2(b'\n', b'\r', &chunk[pos..]) else {
                self.push_carry(&chunk[pos..])?;
                break;
            };
            let eol = pos + off;
            let line = if self.carry.is_empty() {
                if off > self.max {
                    return Err(Error::EventTooLarge { limit: self.max });
                }
                Line::Chunk(pos, eol)
            } else {
                self.push_carry(&chunk[pos..eol])?;
                Line::Carry
            };
            let mut next = eol + 1;
            if chunk[eol] == b'\r' {
                if next == chunk.len() {
                    self.skip_lf = true;
                } else if chunk[next] == b'\n' {
                    next += 1;
                }
            }
            let dispatched = self.line(chunk, line, block_start, next, on_event)?;
            if dispatched {
                block_start = Some(next);
            }
            pos = next;
        }

        // Borrowed slots point into this chunk, which the caller may drop after we return.
        if let Slot::Chunk(s, e) = self.data {
            self.data_buf.clear();
            self.data_buf.extend_from_slice(&chunk[s..e]);
            self.data = Slot::Buf;
        }
        if let Slot::Chunk(s, e) = self.event {
            self.event_buf.clear();
            self.event_buf.extend_from_slice(&chunk[s..e]);
            self.event = Slot::Buf;
        }
        Ok(())
    }

    fn push_carry(&mut self, bytes: &[u8]) -> Result<()> {
        if self.carry.len() + bytes.len() > self.max {
            return Err(Error::EventTooLarge { limit: self.max });
        }
        self.carry.extend_from_slice(bytes);
        Ok(())
    }

    /// Process one complete line; returns whether it was a blank line (the block ended).
    fn line(
        &mut self,
        chunk: &[u8],
        line: Line,
        block_start: Option<usize>,
        end: usize,
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<bool> {
        let carry = std::mem::take(&mut self.carry);
        let r = self.line_inner(chunk, line, &carry, block_start, end, on_event);
        let mut carry = carry;
        carry.clear();
        if carry.capacity() > KEEP_CAPACITY {
            carry = Vec::new();
        }
        self.carry = carry;
        r
    }

    fn line_inner(
        &mut self,
        chunk: &[u8],
        line: Line,
        carry: &[u8],
        block_start: Option<usize>,
        end: usize,
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<bool> {
        let (bytes, base) = match line {
            Line::Chunk(s, e) => (&chunk[s..e], Some(s)),
            Line::Carry => (carry, None),
        };
        if bytes.is_empty() {
            self.dispatch(chunk, block_start, end, on_event);
            return Ok(true);
        }
        self.in_block = true;
        if bytes[0] == b':' {
            return Ok(false);
        }
        self.has_fields = true;
        let (name, vstart) = match memchr::memchr(b':', bytes) {
            Some(c) if bytes.get(c + 1) == Some(&b' ') => (&bytes[..c], c + 2),
            Some(c) => (&bytes[..c], c + 1),
            None => (bytes, bytes.len()),
        };
        let value = &bytes[vstart..];
        // Range of the value in the chunk, when the line is borrowed.
        let in_chunk = base.map(|b| (b + vstart, b + bytes.len()));
        match name {
            b"data" => {
                let added = if self.data == Slot::Unset {
                    value.len()
                } else {
                    value.len() + 1
                };
                if self.data_len + added > self.max {
                    return Err(Error::EventTooLarge { limit: self.max });
                }
                self.data_len += added;
                match (self.data, in_chunk) {
                    (Slot::Unset, Some((s, e))) => self.data = Slot::Chunk(s, e),
                    (Slot::Unset, None) => {
                        self.data_buf.clear();
                        self.data_buf.extend_from_slice(value);
                        self.data = Slot::Buf;
                    }
                    (Slot::Chunk(s, e), _) => {
                        self.data_buf.clear();
                        self.data_buf.extend_from_slice(&chunk[s..e]);
                        self.data_buf.push(b'\n');
                        self.data_buf.extend_from_slice(value);
                        self.data = Slot::Buf;
                    }
                    (Slot::Buf, _) => {
                        self.data_buf.push(b'\n');
                        self.data_buf.extend_from_slice(value);
                    }
                }
            }
            b"event" => match in_chunk {
                Some((s, e)) => self.event = Slot::Chunk(s, e),
                None => {
                    self.event_buf.clear();
                    self.event_buf.extend_from_slice(value);
                    self.event = Slot::Buf;
                }
            },
            // An id containing NUL is ignored, per the spec.
            b"id" if memchr::memchr(0, value).is_none() => {
                self.last_id.clear();
                self.last_id.extend_from_slice(value);
            }
            b"retry" => {
                if let Some(ms) = parse_digits(value) {
                    self.retry = Some(ms);
                    self.reconnection_time = Some(ms);
                }
            }
            _ => {}
        }
        Ok(false)
    }

    fn dispatch(
        &mut self,
        chunk: &[u8],
        block_start: Option<usize>,
        end: usize,
        on_event: &mut impl FnMut(Event<'_>),
    ) {
        if self.data != Slot::Unset {
            let (data, data_borrowed) = match self.data {
                Slot::Chunk(s, e) => (&chunk[s..e], true),
                _ => (&self.data_buf[..], false),
            };
            let event: &[u8] = match self.event {
                Slot::Chunk(s, e) => &chunk[s..e],
                Slot::Buf => &self.event_buf,
                Slot::Unset => &[],
            };
            on_event(Event {
                event,
                data,
                id: &self.last_id,
                retry: self.retry,
                span: block_start.unwrap_or(0)..end,
                starts_in_chunk: block_start.is_some(),
                data_borrowed,
            });
        }
        self.data = Slot::Unset;
        self.data_len = 0;
        self.event = Slot::Unset;
        self.retry = None;
        self.in_block = false;
        self.has_fields = false;
        release(&mut self.data_buf);
        release(&mut self.event_buf);
    }
}

/// Clear a buffer, and drop its memory if an unusually large event grew it.
fn release(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > KEEP_CAPACITY {
        *buf = Vec::new();
    }
}

/// The spec's "only ASCII digits, base ten"; `None` for empty, other bytes, or u64 overflow.
fn parse_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests;
