;; A Proxy-Wasm 0.2.1 test plugin for requests paused without a callout (tests/tests/wasm.rs).
;; `proxy_on_request_headers` answers Pause (1). Unless the request has `x-hold`, it remembers the
;; context, and the next `proxy_on_tick` (every 20 ms) continues it: `proxy_set_effective_context`
;; to it, then `proxy_continue_stream(HTTP_REQUEST)`. A request with `x-hold` is never continued
;; (the gateway answers it 504 after the plugin's `pause_limit`). It remembers one request at a
;; time per core: send them one by one.
(module
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 4096))
  (global $pending (mut i32) (i32.const 0))
  (data (i32.const 1024) "x-hold")
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
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $tick (i32.const 20)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32) (param i32) (result i32)
    ;; Any status but Ok (0): no `x-hold`, so the tick continues it.
    (if (i32.ne (call $get (i32.const 0) (i32.const 1024) (i32.const 6) (i32.const 2048) (i32.const 2052))
                (i32.const 0))
      (then (global.set $pending (local.get $ctx))))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (if (global.get $pending)
      (then
        (drop (call $effective (global.get $pending)))
        (drop (call $continue (i32.const 0)))
        (global.set $pending (i32.const 0)))))
)
