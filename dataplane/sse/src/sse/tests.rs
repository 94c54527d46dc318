use super::*;
use crate::{find_usage, is_done};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    event: Vec<u8>,
    data: Vec<u8>,
    id: Option<Vec<u8>>,
    retry: Option<u64>,
}

fn ev(event: &str, data: &str) -> Ev {
    Ev {
        event: event.as_bytes().to_vec(),
        data: data.as_bytes().to_vec(),
        id: None,
        retry: None,
    }
}

impl Ev {
    fn id(mut self, id: &str) -> Self {
        self.id = Some(id.as_bytes().to_vec());
        self
    }
    fn retry(mut self, ms: u64) -> Self {
        self.retry = Some(ms);
        self
    }
}

fn own(e: &Event<'_>) -> Ev {
    Ev {
        event: e.event_type().to_vec(),
        data: e.data().to_vec(),
        id: e.id().map(<[u8]>::to_vec),
        retry: e.retry(),
    }
}

/// Scan `chunks` with a fresh scanner; the events and the first error.
fn scan(chunks: &[&[u8]], max: usize) -> (Vec<Ev>, Result<()>) {
    let mut s = SseScanner::with_max_event_size(max);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = s.feed(c, |e| out.push(own(&e))) {
            return (out, Err(e));
        }
    }
    (out, Ok(()))
}

/// The stream gives `expected` whole, byte by byte, and split in two and in three at every point.
fn check_every_split(stream: &[u8], expected: &[Ev]) {
    let max = DEFAULT_MAX_EVENT_SIZE;
    let (whole, r) = scan(&[stream], max);
    r.unwrap();
    assert_eq!(whole, expected, "whole stream");
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(
        scan(&bytes, max),
        (expected.to_vec(), Ok(())),
        "byte by byte"
    );
    for i in 0..=stream.len() {
        let (a, b) = stream.split_at(i);
        assert_eq!(
            scan(&[a, b], max),
            (expected.to_vec(), Ok(())),
            "split at {i}"
        );
    }
    // Three pieces: every pair of points for short streams, a stride for long ones.
    let step = (stream.len() / 120).max(1);
    for i in (0..=stream.len()).step_by(step) {
        for j in (i..=stream.len()).step_by(step) {
            let parts = [&stream[..i], &stream[i..j], &stream[j..]];
            assert_eq!(
                scan(&parts, max),
                (expected.to_vec(), Ok(())),
                "split {i}/{j}"
            );
        }
    }
}

fn line_ends(stream: &str, eol: &str) -> Vec<u8> {
    stream.replace('\n', eol).into_bytes()
}

const OPENAI: &str = concat!(
    r#"data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1731000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1731000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1731000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":"!\n\"usage\""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1731000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1731000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#,
    "\n\n",
    "data: [DONE]\n\n",
);

fn openai_data() -> Vec<&'static str> {
    OPENAI
        .split("\n\n")
        .filter(|s| !s.is_empty())
        .map(|s| s.strip_prefix("data: ").unwrap())
        .collect()
}

const ANTHROPIC: &str = concat!(
    "event: message_start\n",
    r#"data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
    "\n\n",
    "event: content_block_start\n",
    r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    "\n\n",
    "event: ping\n",
    r#"data: {"type": "ping"}"#,
    "\n\n",
    "event: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
    "\n\n",
    "event: content_block_delta\n",
    r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}"#,
    "\n\n",
    "event: content_block_stop\n",
    r#"data: {"type":"content_block_stop","index":0}"#,
    "\n\n",
    "event: message_delta\n",
    r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
    "\n\n",
    "event: message_stop\n",
    r#"data: {"type":"message_stop"}"#,
    "\n\n",
);

fn anthropic_events() -> Vec<Ev> {
    ANTHROPIC
        .split("\n\n")
        .filter(|s| !s.is_empty())
        .map(|block| {
            let (name, data) = block.split_once('\n').unwrap();
            ev(
                name.strip_prefix("event: ").unwrap(),
                data.strip_prefix("data: ").unwrap(),
            )
        })
        .collect()
}

#[test]
fn openai_stream_every_split_and_line_end() {
    let expected: Vec<Ev> = openai_data().iter().map(|d| ev("message", d)).collect();
    assert_eq!(expected.len(), 6);
    for eol in ["\n", "\r\n", "\r"] {
        check_every_split(&line_ends(OPENAI, eol), &expected);
    }
}

#[test]
fn anthropic_stream_every_split_and_line_end() {
    let expected = anthropic_events();
    assert_eq!(expected.len(), 8);
    assert_eq!(expected[2].event, b"ping");
    for eol in ["\n", "\r\n", "\r"] {
        check_every_split(&line_ends(ANTHROPIC, eol), &expected);
    }
}

#[test]
fn usage_and_done_from_scanned_streams() {
    let mut s = SseScanner::new();
    let mut usage = Vec::new();
    let mut done = 0;
    s.feed(OPENAI.as_bytes(), |e| {
        if let Some(u) = find_usage(e.data()) {
            usage.push(u.to_vec());
        }
        done += is_done(e.data()) as usize;
    })
    .unwrap();
    assert_eq!(done, 1);
    assert_eq!(usage.len(), 1);
    assert!(usage[0].starts_with(br#"{"prompt_tokens":9,"completion_tokens":2"#));

    let mut s = SseScanner::new();
    let mut usage = Vec::new();
    s.feed(ANTHROPIC.as_bytes(), |e| {
        if let Some(u) = find_usage(e.data()) {
            usage.push((e.event_type().to_vec(), u.to_vec()));
        }
    })
    .unwrap();
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[0].0, b"message_start");
    assert_eq!(
        usage[1],
        (
            b"message_delta".to_vec(),
            br#"{"output_tokens":15}"#.to_vec()
        )
    );
}

#[test]
fn mixed_line_ends_comments_and_multiline_data() {
    let stream = b": keep-alive\r\n\r\n:\n\
        event: update\r\ndata: line one\rdata:line two\ndata:  three\r\n\
        : a comment inside the block\n\
        id: 42\nretry: 1500\n\n\
        data\n\n\
        data:\ndata:\n\n\
        nonsense field: ignored\nretry: 10x\ndata: x\r\n\r\n";
    let expected = [
        ev("update", "line one\nline two\n three")
            .id("42")
            .retry(1500),
        ev("message", "").id("42"),
        ev("message", "\n").id("42"),
        ev("message", "x").id("42"),
    ];
    check_every_split(stream, &expected);
}

#[test]
fn whatwg_examples() {
    // The examples of the HTML standard's "Event stream interpretation" section.
    check_every_split(
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        &[ev("message", "YHOO\n+2\n10")],
    );
    check_every_split(
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
        &[ev("message", "first event").id("1"), ev("message", "second event")],
    );
    check_every_split(
        b"data\n\ndata\ndata\n\ndata:",
        &[ev("message", ""), ev("message", "\n")],
    );
    check_every_split(
        b"data:test\n\ndata: test\n\n",
        &[ev("message", "test"), ev("message", "test")],
    );
}

#[test]
fn id_rules() {
    // An id with NUL is ignored; the last id persists; an empty id resets it.
    let stream = b"id: a\ndata: 1\n\nid: b\0c\ndata: 2\n\ndata: 3\n\nid:\ndata: 4\n\n";
    let expected = [
        ev("message", "1").id("a"),
        ev("message", "2").id("a"),
        ev("message", "3").id("a"),
        ev("message", "4"),
    ];
    check_every_split(stream, &expected);
}

#[test]
fn event_type_resets_and_blocks_without_data_are_not_dispatched() {
    let stream = b"event: a\n\ndata: x\n\nevent: b\nretry: 5\n\nevent:\ndata: y\n\n";
    check_every_split(stream, &[ev("message", "x"), ev("message", "y")]);
    let mut s = SseScanner::new();
    s.feed(stream, |_| {}).unwrap();
    assert_eq!(s.reconnection_time(), Some(5));
}

#[test]
fn field_names_are_exact() {
    let stream = b"Data: no\ndata : no\n data: no\nDATA:no\ndata: yes\n\n";
    check_every_split(stream, &[ev("message", "yes")]);
}

#[test]
fn bom_at_start_only() {
    let mut s = b"\xEF\xBB\xBFdata: a\n\n".to_vec();
    check_every_split(&s, &[ev("message", "a")]);
    // A second BOM is part of the line: the field name becomes "\u{FEFF}data".
    s.splice(0..0, *b"\xEF\xBB\xBF");
    check_every_split(&s, &[]);
    // A partial BOM is not stripped: its bytes start the first line.
    check_every_split(b"\xEF\xBBdata: a\n\ndata: b\n\n", &[ev("message", "b")]);
    check_every_split(b"\xEF\xBB\n\ndata: b\n\n", &[ev("message", "b")]);
}

#[test]
fn crlf_split_between_chunks_is_one_line_end() {
    // "\r" ends a chunk and "\n" starts the next: one line end, not a blank line.
    let (evs, r) = scan(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"], 1024);
    r.unwrap();
    assert_eq!(evs, [ev("message", "a\nb")]);
}

#[test]
fn zero_copy_when_the_event_is_in_one_chunk() {
    let stream = b"event: e\ndata: one\n\ndata: a\ndata: b\n\ndata: split";
    let mut s = SseScanner::new();
    let mut borrowed = Vec::new();
    s.feed(stream, |e| borrowed.push(e.data_is_borrowed()))
        .unwrap();
    assert_eq!(borrowed, [true, false]);
    s.feed(b" here\n\n", |e| {
        assert!(!e.data_is_borrowed());
        assert_eq!(e.data(), b"split here");
        assert!(!e.starts_in_chunk());
        assert_eq!(e.span(), 0..7);
    })
    .unwrap();
    // The data line in the new chunk is borrowed even when the event line came earlier.
    s.feed(b"event: late\n", |_| unreachable!()).unwrap();
    s.feed(b"data: here\n\n", |e| {
        assert!(e.data_is_borrowed());
        assert_eq!(e.event_type(), b"late");
    })
    .unwrap();
}

#[test]
fn spans_cut_the_chunk_at_event_boundaries() {
    for eol in ["\n", "\r\n", "\r"] {
        let stream = line_ends(ANTHROPIC, eol);
        let blank = eol.repeat(2);
        let mut s = SseScanner::new();
        let mut spans = Vec::new();
        s.feed(&stream, |e| {
            assert!(e.starts_in_chunk());
            spans.push(e.span());
        })
        .unwrap();
        assert_eq!(spans.len(), 8);
        assert_eq!(spans[0].start, 0);
        assert_eq!(spans.last().unwrap().end, stream.len());
        for w in spans.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for sp in &spans {
            let text = &stream[sp.clone()];
            assert!(text.starts_with(b"event: "));
            assert!(text.ends_with(blank.as_bytes()));
        }
    }
    // Comments and blank lines before an event are not part of it.
    let mut s = SseScanner::new();
    s.feed(b": hi\n\n\ndata: x\n\n", |e| assert_eq!(e.span(), 7..16))
        .unwrap();
    // A CRLF split across chunks: the next event starts after the LF.
    let mut s = SseScanner::new();
    s.feed(b"data: a\r\n\r", |e| assert_eq!(e.span(), 0..10))
        .unwrap();
    s.feed(b"\ndata: b\n\n", |e| {
        assert!(e.starts_in_chunk());
        assert_eq!(e.span(), 1..10);
    })
    .unwrap();
}

#[test]
fn oversize_line_and_event_are_refused_the_same_whatever_the_split() {
    let max = 16;
    let limit = Err(Error::EventTooLarge { limit: max });
    let cases: [(&[u8], usize); 5] = [
        // One line longer than the limit (a data line, a comment, an unterminated line).
        (b"data: ok\n\ndata: 0123456789abcdefg\n\ndata: never\n\n", 1),
        (b"data: ok\n\n: 0123456789abcdefghij\n\ndata: never\n\n", 1),
        (b"data: ok\n\ndata: 0123456789abcdefghijklmnop", 1),
        // Lines within the limit whose joined data is not.
        (b"data: ok\n\ndata: 012345\ndata: 6789ab\ndata: cdef\n\n", 1),
        // Exactly at the limit is fine.
        (b"data:0123456789a\ndata:0123\n\n", 1),
    ];
    for (i, (stream, n_ok)) in cases.iter().enumerate() {
        let want = if i == 4 { Ok(()) } else { limit.clone() };
        let (evs, r) = scan(&[stream], max);
        assert_eq!((evs.len(), &r), (*n_ok, &want), "case {i} whole");
        for k in 0..=stream.len() {
            let (a, b) = stream.split_at(k);
            let (evs2, r2) = scan(&[a, b], max);
            assert_eq!((evs2, r2), (evs.clone(), r.clone()), "case {i} split {k}");
        }
    }
}

#[test]
fn errors_are_sticky_and_memory_is_bounded() {
    let mut s = SseScanner::with_max_event_size(1024);
    let junk = vec![b'a'; 600];
    s.feed(&junk, |_| {}).unwrap();
    let err = s.feed(&junk, |_| {}).unwrap_err();
    assert_eq!(err, Error::EventTooLarge { limit: 1024 });
    assert_eq!(
        s.feed(b"\n\ndata: x\n\n", |_| unreachable!()),
        Err(err.clone())
    );
    assert_eq!(s.finish(), Err(err));
    assert!(s.carry.capacity() <= 1024 + KEEP_CAPACITY);
}

#[test]
fn big_event_buffers_are_released_after_dispatch() {
    let mut s = SseScanner::new();
    let big = vec![b'x'; 100_000];
    s.feed(b"data: ", |_| {}).unwrap();
    s.feed(&big, |_| {}).unwrap();
    let mut n = 0;
    s.feed(b"\n\n", |e| {
        n = e.data().len();
    })
    .unwrap();
    assert_eq!(n, 100_000);
    assert!(s.carry.capacity() <= KEEP_CAPACITY);
    assert!(s.data_buf.capacity() <= KEEP_CAPACITY);
}

#[test]
fn finish_reports_a_cut_stream_and_resets() {
    let mut s = SseScanner::new();
    s.feed(b"data: a\n\n: trailing comment\n\n", |_| {})
        .unwrap();
    assert!(!s.in_event());
    assert_eq!(s.finish(), Ok(()));
    s.feed(b"data: cut", |_| unreachable!()).unwrap();
    assert!(s.in_event());
    assert_eq!(s.finish(), Err(Error::Truncated));
    s.feed(b"data: whole line\n", |_| unreachable!()).unwrap();
    assert_eq!(s.finish(), Err(Error::Truncated));
    // After finish the scanner reads a new stream, BOM included.
    let mut got = Vec::new();
    s.feed(b"\xEF\xBB\xBFdata: new\n\n", |e| {
        got.push(e.data().to_vec())
    })
    .unwrap();
    assert_eq!(got, [b"new".to_vec()]);
    assert_eq!(s.last_event_id(), b"");
}

#[test]
fn retry_parsing() {
    assert_eq!(parse_digits(b"0"), Some(0));
    assert_eq!(parse_digits(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_digits(b"18446744073709551616"), None);
    assert_eq!(parse_digits(b""), None);
    assert_eq!(parse_digits(b" 1"), None);
    assert_eq!(parse_digits(b"-1"), None);
}
