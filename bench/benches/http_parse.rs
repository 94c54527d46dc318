//! HTTP/1.1 codec: request and response heads, chunked bodies.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use weir_http::{parse_request, parse_response, BodyDecoder, BodyKind, HeadLimits};

/// The smallest request a health checker or `curl` sends.
const SMALL_GET: &[u8] =
    b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

/// What a desktop browser sends for a page: 15 fields, cookies included.
const BROWSER_GET: &[u8] = b"GET /docs/guide/getting-started?lang=en&ref=nav HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-User: ?1\r\n\
Sec-Fetch-Dest: document\r\n\
Referer: https://www.example.com/docs/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
Cookie: _ga=GA1.1.123456789.1700000000; session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdef; theme=dark\r\n\
\r\n";

/// The head of an OpenAI SDK chat completion request.
const OPENAI_POST: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\n\
Host: api.openai.com\r\n\
Accept-Encoding: gzip, deflate\r\n\
Connection: keep-alive\r\n\
Accept: application/json\r\n\
Content-Type: application/json\r\n\
User-Agent: OpenAI/Python 1.51.0\r\n\
X-Stainless-Lang: python\r\n\
X-Stainless-Package-Version: 1.51.0\r\n\
X-Stainless-OS: Linux\r\n\
X-Stainless-Arch: x64\r\n\
X-Stainless-Runtime: CPython\r\n\
X-Stainless-Runtime-Version: 3.12.3\r\n\
Authorization: Bearer sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n\
X-Stainless-Async: false\r\n\
x-stainless-retry-count: 0\r\n\
Content-Length: 187\r\n\
\r\n";

/// A JSON response from an upstream.
const JSON_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Date: Tue, 14 May 2024 10:00:00 GMT\r\n\
Content-Type: application/json\r\n\
Content-Length: 1234\r\n\
Connection: keep-alive\r\n\
access-control-expose-headers: X-Request-ID\r\n\
openai-organization: user-abc123\r\n\
openai-processing-ms: 412\r\n\
openai-version: 2020-10-01\r\n\
strict-transport-security: max-age=31536000; includeSubDomains; preload\r\n\
x-ratelimit-limit-requests: 10000\r\n\
x-ratelimit-remaining-requests: 9999\r\n\
x-ratelimit-reset-requests: 6ms\r\n\
x-request-id: req_0123456789abcdef0123456789abcdef\r\n\
\r\n";

/// A streaming (SSE) response head.
const SSE_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream; charset=utf-8\r\n\
Transfer-Encoding: chunked\r\n\
Connection: keep-alive\r\n\
Cache-Control: no-cache\r\n\
x-request-id: req_0123456789abcdef0123456789abcdef\r\n\
\r\n";

fn bench_request_heads(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let mut g = c.benchmark_group("parse_request");
    for (name, raw) in [
        ("small_get", SMALL_GET),
        ("browser_get_15_headers", BROWSER_GET),
        ("openai_chat_post", OPENAI_POST),
    ] {
        assert!(
            matches!(
                parse_request(&mut BytesMut::from(raw), &limits),
                Ok(Some(_))
            ),
            "{name} must parse"
        );
        g.throughput(Throughput::Bytes(raw.len() as u64));
        // The parser splits the head off its buffer, so each run gets a fresh copy, made outside
        // the timed part.
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || BytesMut::from(raw),
                |buf| black_box(parse_request(buf, &limits)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn bench_response_heads(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_response");
    for (name, raw) in [
        ("json_14_headers", JSON_RESPONSE),
        ("sse_chunked", SSE_RESPONSE),
    ] {
        assert!(
            matches!(
                parse_response(&mut BytesMut::from(raw), 64 << 10, false),
                Ok(Some(_))
            ),
            "{name} must parse"
        );
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || BytesMut::from(raw),
                |buf| black_box(parse_response(buf, 64 << 10, false)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Chunked framing of `chunks` payloads, then the last chunk.
fn chunked(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        weir_http::write_chunk_header(&mut out, c.len());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    weir_http::write_chunk_header(&mut out, 0);
    out
}

fn bench_chunked(c: &mut Criterion) {
    // 64 KiB of payload in 16 chunks of 4 KiB, as a file or large JSON body arrives.
    let big = chunked(&vec![vec![b'x'; 4096]; 16]);
    // An SSE stream: 400 small chunks, each one `data:` event of a token delta.
    let event = br#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}]}"#;
    let mut ev = event.to_vec();
    ev.extend_from_slice(b"\n\n");
    let sse = chunked(&vec![ev; 400]);

    for body in [&big, &sse] {
        let mut d = BodyDecoder::new(BodyKind::Chunked);
        let scan = d.scan(body, |_| {});
        assert!(matches!(scan, Ok(s) if s.done && s.consumed == body.len()));
    }

    let mut g = c.benchmark_group("body_chunked");
    for (name, body) in [("64k_in_4k_chunks", &big), ("sse_400_events", &sse)] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = BodyDecoder::new(BodyKind::Chunked);
                let mut payload = 0usize;
                let scan = d.scan(black_box(body), |r| payload += r.len());
                black_box((scan, payload))
            })
        });
    }
    // The same SSE stream as it arrives off the socket: one read per event.
    let per_read: Vec<&[u8]> = {
        let mut v = Vec::new();
        let mut rest: &[u8] = &sse;
        let step = sse.len() / 400;
        while !rest.is_empty() {
            let n = step.min(rest.len());
            v.push(&rest[..n]);
            rest = &rest[n..];
        }
        v
    };
    g.throughput(Throughput::Bytes(sse.len() as u64));
    g.bench_function("sse_400_events_one_read_each", |b| {
        b.iter(|| {
            let mut d = BodyDecoder::new(BodyKind::Chunked);
            let mut payload = 0usize;
            for piece in &per_read {
                let _ = d.scan(black_box(piece), |r| payload += r.len());
            }
            black_box((d.is_done(), payload))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_request_heads,
    bench_response_heads,
    bench_chunked
);
criterion_main!(benches);
