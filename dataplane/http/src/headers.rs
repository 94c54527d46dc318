//! An ordered list of header fields. A parsed head keeps its fields as spans of the received bytes
//! (no per-field slices, no allocation) and writes them back verbatim; fields appended to it are
//! kept beside the spans. The first caller that asks for a field as `Bytes`, or changes the list
//! otherwise, turns it into owned `Bytes` slices of that head once.

use std::cell::OnceCell;
use std::fmt;

use bytes::Bytes;
use smallvec::SmallVec;

/// One header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Name as received (compare case-insensitively).
    pub name: Bytes,
    /// Value, without surrounding whitespace.
    pub value: Bytes,
}

/// Where one field lies in the head it was parsed from: its name, its value (trimmed), and its whole
/// line with the CRLF.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    line: u32,
    name_end: u32,
    value: u32,
    value_end: u32,
    line_end: u32,
}

impl Span {
    /// A field: `line..line_end` is the line with its CRLF, `name` and `value` lie inside it.
    /// (Heads are limited far below 4 GiB.)
    pub(crate) fn new(
        line: usize,
        name_end: usize,
        value: (usize, usize),
        line_end: usize,
    ) -> Span {
        Span {
            line: line as u32,
            name_end: name_end as u32,
            value: value.0 as u32,
            value_end: value.1 as u32,
            line_end: line_end as u32,
        }
    }

    /// The field's name in `buf`.
    pub(crate) fn name<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.line as usize..self.name_end as usize]
    }

    fn value<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.value as usize..self.value_end as usize]
    }
}

/// Spans of a typical head's fields fit inline. (Six: more would make every `Headers`, and so
/// every local response, larger than is worth it.)
pub(crate) type Spans = SmallVec<[Span; 6]>;

/// Fields as spans of the head they came in, then the fields appended since (a filter's or a
/// plugin's additions: appending keeps the received fields as spans).
#[derive(Clone, Default)]
struct Raw {
    buf: Bytes,
    spans: Spans,
    added: Vec<Header>,
}

impl Raw {
    fn to_list(&self) -> Vec<Header> {
        let mut list = Vec::with_capacity(self.spans.len() + self.added.len());
        list.extend(self.spans.iter().map(|s| Header {
            name: self.buf.slice(s.line as usize..s.name_end as usize),
            value: self.buf.slice(s.value as usize..s.value_end as usize),
        }));
        list.extend(self.added.iter().cloned());
        list
    }
}

/// Header fields in order; names compare case-insensitively.
///
/// The read methods that return `&[u8]` ([`value`](Headers::value), [`fields`](Headers::fields),
/// [`contains`](Headers::contains), [`write_to`](Headers::write_to)) work on a parsed head as it
/// is; those that return `Bytes` or [`Header`] references, and every change, make owned fields
/// first (once per head).
#[derive(Default)]
pub struct Headers {
    /// The owned fields; once set, the only truth (`raw` is then stale).
    owned: OnceCell<Vec<Header>>,
    raw: Raw,
}

impl Headers {
    /// An empty list with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            owned: OnceCell::from(Vec::with_capacity(n)),
            raw: Raw::default(),
        }
    }

    /// Fields given as spans of `buf`, a received head (the parsers' constructor).
    pub(crate) fn raw(buf: Bytes, spans: Spans) -> Self {
        Headers {
            owned: OnceCell::new(),
            raw: Raw {
                buf,
                spans,
                added: Vec::new(),
            },
        }
    }

    /// The owned fields, made from the spans the first time.
    fn list(&self) -> &Vec<Header> {
        self.owned.get_or_init(|| self.raw.to_list())
    }

    /// The owned fields, for a change; the spans are dropped (with their hold on the head).
    fn list_mut(&mut self) -> &mut Vec<Header> {
        if self.owned.get().is_none() {
            let list = self.raw.to_list();
            self.owned = OnceCell::from(list);
        }
        self.raw = Raw::default();
        match self.owned.get_mut() {
            Some(v) => v,
            None => unreachable!("set just above"),
        }
    }

    /// `(name, value)` of every field in order, without making owned fields.
    pub fn fields(&self) -> Fields<'_> {
        match self.owned.get() {
            Some(v) => Fields(FieldsInner::Owned(v.iter())),
            None => Fields(FieldsInner::Raw(
                &self.raw.buf,
                self.raw.spans.iter(),
                self.raw.added.iter(),
            )),
        }
    }

    /// The first value of `name`, without making owned fields.
    pub fn value(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.list()
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| &h.value)
    }

    /// The first value of `name` as text, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.value(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.list()
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| &h.value)
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    /// Appends a field, keeping existing ones of the same name. A received head's fields stay
    /// spans of it.
    pub fn append(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let h = Header {
            name: name.into(),
            value: value.into(),
        };
        match self.owned.get_mut() {
            Some(list) => list.push(h),
            None => self.raw.added.push(h),
        }
    }

    /// Replaces every field of that name by one (in the place of the first). A received head's
    /// fields stay spans of it unless one of them has that name.
    pub fn set(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let name = name.into();
        let value = value.into();
        let received = self.owned.get().is_none() && {
            let Raw { buf, spans, .. } = &self.raw;
            spans
                .iter()
                .any(|s| s.name(buf).eq_ignore_ascii_case(&name))
        };
        let list = if self.owned.get().is_some() || received {
            self.list_mut()
        } else {
            &mut self.raw.added
        };
        let mut slot = None;
        let mut i = 0;
        list.retain(|h| {
            let same = h.name.eq_ignore_ascii_case(&name);
            if same && slot.is_none() {
                slot = Some(i);
            }
            i += 1;
            !same || slot == Some(i - 1)
        });
        match slot {
            Some(i) => list[i].value = value,
            None => list.push(Header { name, value }),
        }
    }

    /// Removes every field of that name; returns whether any was there. A received head's fields
    /// stay spans of it (the others still go out as received, nothing is made owned).
    pub fn remove(&mut self, name: &str) -> bool {
        let name = name.as_bytes();
        if let Some(list) = self.owned.get_mut() {
            let before = list.len();
            list.retain(|h| !h.name.eq_ignore_ascii_case(name));
            return list.len() != before;
        }
        let Raw { buf, spans, added } = &mut self.raw;
        let before = spans.len() + added.len();
        spans.retain(|s| !s.name(buf).eq_ignore_ascii_case(name));
        added.retain(|h| !h.name.eq_ignore_ascii_case(name));
        spans.len() + added.len() != before
    }

    /// Keeps the fields for which `keep` says yes.
    pub fn retain(&mut self, keep: impl FnMut(&Header) -> bool) {
        self.list_mut().retain(keep);
    }

    /// Fields in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.list().iter()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match self.owned.get() {
            Some(v) => v.len(),
            None => self.raw.spans.len() + self.raw.added.len(),
        }
    }

    /// No fields.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `name: value\r\n` for each field (a parsed head's lines go out as received).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.write_except(out, |_| false);
    }

    /// Writes every field whose name `skip` does not pick, like [`write_to`](Headers::write_to).
    pub fn write_except(&self, out: &mut Vec<u8>, mut skip: impl FnMut(&[u8]) -> bool) {
        // Owned fields, or a received head's lines followed by the fields appended to it.
        let list = match self.owned.get() {
            Some(list) => list,
            None => {
                // Adjacent lines go out in one copy.
                let buf = &self.raw.buf[..];
                let mut run: Option<(usize, usize)> = None;
                for s in &self.raw.spans {
                    if skip(s.name(buf)) {
                        continue;
                    }
                    let (start, end) = (s.line as usize, s.line_end as usize);
                    run = match run {
                        Some((a, b)) if b == start => Some((a, end)),
                        Some((a, b)) => {
                            out.extend_from_slice(&buf[a..b]);
                            Some((start, end))
                        }
                        None => Some((start, end)),
                    };
                }
                if let Some((a, b)) = run {
                    out.extend_from_slice(&buf[a..b]);
                }
                &self.raw.added
            }
        };
        for h in list {
            if !skip(&h.name) {
                out.extend_from_slice(&h.name);
                out.extend_from_slice(b": ");
                out.extend_from_slice(&h.value);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

impl Clone for Headers {
    fn clone(&self) -> Self {
        match self.owned.get() {
            Some(v) => Headers {
                owned: OnceCell::from(v.clone()),
                raw: Raw::default(),
            },
            None => Headers {
                owned: OnceCell::new(),
                raw: self.raw.clone(),
            },
        }
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.fields().eq(other.fields())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.fields().map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            }))
            .finish()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// `(name, value)` of each field: see [`Headers::fields`].
pub struct Fields<'a>(FieldsInner<'a>);

enum FieldsInner<'a> {
    Owned(std::slice::Iter<'a, Header>),
    Raw(
        &'a Bytes,
        std::slice::Iter<'a, Span>,
        std::slice::Iter<'a, Header>,
    ),
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            FieldsInner::Owned(it) => it.next().map(|h| (&h.name[..], &h.value[..])),
            FieldsInner::Raw(buf, spans, added) => match spans.next() {
                Some(s) => Some((s.name(buf), s.value(buf))),
                None => added.next().map(|h| (&h.name[..], &h.value[..])),
            },
        }
    }
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) that a proxy never forwards; framing fields are re-made.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "proxy-authenticate",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_all_and_keeps_position() {
        let mut h = Headers::default();
        h.append("A", "1");
        h.append("b", "2");
        h.append("a", "3");
        h.set("a", "x");
        assert_eq!(h.len(), 2);
        assert_eq!(h.get("A").map(|v| &v[..]), Some(&b"x"[..]));
        assert_eq!(h.iter().next().map(|f| &f.value[..]), Some(&b"x"[..]));
        assert!(h.remove("B"));
        assert!(!h.contains("b"));
    }

    #[test]
    fn tokens() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(!has_token(b"keep-alive", "close"));
    }

    fn parsed() -> Headers {
        // Three lines; the middle one is left out, as a parser does with a hop-by-hop field.
        let buf = Bytes::from_static(b"A: 1\r\nConnection: x\r\nB:  2 \r\n");
        let mut spans = Spans::new();
        spans.push(Span::new(0, 1, (3, 4), 6));
        spans.push(Span::new(21, 22, (25, 26), 29));
        Headers::raw(buf, spans)
    }

    #[test]
    fn appending_keeps_a_received_head_as_spans() {
        let mut h = parsed();
        h.append("X-Plugin", "on");
        h.set("x-served-by", "weir");
        h.set("X-Served-By", "weir-2");
        assert!(h.owned.get().is_none(), "still spans");
        assert_eq!(h.len(), 4);
        assert_eq!(h.value("x-plugin"), Some(&b"on"[..]));
        assert_eq!(h.value("x-served-by"), Some(&b"weir-2"[..]));
        let mut out = Vec::new();
        h.write_to(&mut out);
        assert_eq!(
            out, b"A: 1\r\nB:  2 \r\nX-Plugin: on\r\nx-served-by: weir-2\r\n",
            "received lines verbatim, then the added fields (a set keeps the first name)"
        );
        out.clear();
        h.write_except(&mut out, |n| n.eq_ignore_ascii_case(b"x-plugin"));
        assert_eq!(out, b"A: 1\r\nB:  2 \r\nx-served-by: weir-2\r\n");
        let names: Vec<&[u8]> = h.fields().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"A"[..], b"B", b"X-Plugin", b"x-served-by"]);
        assert_eq!(h.clone(), h);

        assert!(h.remove("x-plugin"));
        assert!(!h.remove("x-plugin"));
        assert_eq!(h.len(), 3);
        // Setting a received field's name takes the owned path; the order stays.
        h.set("b", "3");
        assert!(h.owned.get().is_some());
        out.clear();
        h.write_to(&mut out);
        assert_eq!(out, b"A: 1\r\nB: 3\r\nx-served-by: weir-2\r\n");
        h.append("Z", "4");
        assert_eq!(h.iter().map(|f| &f.name[..]).last(), Some(&b"Z"[..]));
    }

    #[test]
    fn spans_read_write_and_materialize() {
        let h = parsed();
        assert_eq!(h.len(), 2);
        assert_eq!(h.value("b"), Some(&b"2"[..]));
        let mut out = Vec::new();
        h.write_to(&mut out);
        assert_eq!(out, b"A: 1\r\nB:  2 \r\n", "lines go out as received");
        out.clear();
        h.write_except(&mut out, |n| n == b"A");
        assert_eq!(out, b"B:  2 \r\n");
        let owned = {
            let mut o = Headers::default();
            o.append("A", "1");
            o.append("B", "2");
            o
        };
        assert_eq!(h, owned);
        assert_eq!(h.get("a").map(|v| &v[..]), Some(&b"1"[..]));
        let mut h = h;
        h.append("C", "3");
        out.clear();
        h.write_to(&mut out);
        assert_eq!(out, b"A: 1\r\nB: 2\r\nC: 3\r\n");
        assert!(h.remove("a"));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn remove_from_a_received_head_keeps_its_lines() {
        let mut h = parsed();
        assert!(!h.remove("c"));
        assert!(h.remove("a"));
        assert!(!h.remove("A"), "already gone");
        assert_eq!(h.len(), 1);
        assert_eq!(h.value("a"), None);
        let mut out = Vec::new();
        h.write_to(&mut out);
        assert_eq!(out, b"B:  2 \r\n", "the other line goes out as received");
        // Read as owned fields first: removed from those.
        let mut h = parsed();
        assert_eq!(h.get("a").map(|v| &v[..]), Some(&b"1"[..]));
        assert!(h.remove("A"));
        assert_eq!((h.len(), h.get("a")), (1, None));
    }
}
