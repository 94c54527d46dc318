//! `weir-bench`: criterion benchmarks of Weir's hot paths, run with `cargo bench -p weir-bench`.
//!
//! The library itself is empty; the benchmarks live in `benches/`:
//!
//! - `http_parse`: request and response head parsing (`weir_http::parse_request`,
//!   `parse_response`) and chunked body scanning (`weir_http::BodyDecoder`), the first and last
//!   things every proxied request and response go through;
//! - `route_match`: `weir_route::RouteTable::find` over tables of 10 and 200 routes, run once per
//!   request right after its head is parsed;
//! - `ai_shape`: the stream shapers of `ai` routes (`weir_ai::shape`), per streamed event: an
//!   OpenAI stream passed through, translated for an Anthropic client, and the other way round.
//!
//! `README.md` beside this crate lists what each benchmark measures and the figures measured, with
//! the machine and the command.
