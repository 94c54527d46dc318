;; A Proxy-Wasm 0.2.1 test plugin that counts its response-body callbacks, used by the gateway's
;; tests (tests/tests/wasm.rs): three counters, defined in `proxy_on_configure`,
;;   body_calls   every proxy_on_response_body
;;   body_ends    those with end_of_stream set
;;   body_bytes   the body sizes they were given
;; so a test reads from /metrics how often, and with what, the host called it.
(module
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 4096))
  (global $calls (mut i32) (i32.const 0))
  (global $ends (mut i32) (i32.const 0))
  (global $bytes (mut i32) (i32.const 0))
  (data (i32.const 1024) "body_calls")
  (data (i32.const 1040) "body_ends")
  (data (i32.const 1056) "body_bytes")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (i32.add (local.get $n) (i32.const 8))))
    (if (i32.gt_u (global.get $bump) (i32.const 60000))
      (then (global.set $bump (i32.add (i32.const 4096) (i32.add (local.get $n) (i32.const 8))))
            (local.set $p (i32.const 4096))))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  ;; A counter (metric type 0) named by `len` bytes at `name`; its id.
  (func $counter (param $name i32) (param $len i32) (result i32)
    (drop (call $define (i32.const 0) (local.get $name) (local.get $len) (i32.const 2048)))
    (i32.load (i32.const 2048)))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (global.set $calls (call $counter (i32.const 1024) (i32.const 10)))
    (global.set $ends (call $counter (i32.const 1040) (i32.const 9)))
    (global.set $bytes (call $counter (i32.const 1056) (i32.const 10)))
    (i32.const 1))
  (func (export "proxy_on_response_body") (param $ctx i32) (param $size i32) (param $end i32) (result i32)
    (drop (call $inc (global.get $calls) (i64.const 1)))
    (if (local.get $end)
      (then (drop (call $inc (global.get $ends) (i64.const 1)))))
    (drop (call $inc (global.get $bytes) (i64.extend_i32_u (local.get $size))))
    (i32.const 0))
)
