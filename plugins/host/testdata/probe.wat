;; A small Proxy-Wasm 0.2.1 plugin in text form, for the host's tests: it marks requests and
;; responses and misbehaves on demand. The request field `x-mode` picks what it does in
;; `proxy_on_request_headers`:
;;   deny   answer 403 with the body "denied" (proxy_send_local_response)
;;   trap   execute `unreachable`
;;   loop   spin forever (the epoch deadline must stop it)
;;   grow   grow memory without bound (the memory cap must stop it)
;;   abi    hand the host a return pointer outside its memory
;;   shared count requests in shared data (CAS loop) and report the count in `x-count`
;; Otherwise it adds `x-wasm: on` to the request and `x-wasm-resp: <config>` to the response,
;; where <config> is the plugin configuration (proxy_get_buffer_bytes, type 7), plus the properties
;; `route_name` as `x-route` and `request.path` (path segments NUL-separated) as `x-path`.
(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $sget (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $sset (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_call_foreign_function" (func $foreign (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 8192))
  (data (i32.const 0) "x-wasm")
  (data (i32.const 16) "on")
  (data (i32.const 32) "x-mode")
  (data (i32.const 48) "denied")
  (data (i32.const 64) "x-wasm-resp")
  (data (i32.const 80) "probe-count")
  (data (i32.const 96) "x-count")
  (data (i32.const 112) "configured")
  (data (i32.const 128) "route_name")
  (data (i32.const 144) "x-route")
  (data (i32.const 160) "request\00path")
  (data (i32.const 176) "x-path")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (i32.add (local.get $n) (i32.const 8))))
    ;; a bump allocator that starts over when it reaches the end of the first 64 KiB page pair
    (if (i32.gt_u (global.get $bump) (i32.const 120000))
      (then (global.set $bump (i32.const 8192))
            (local.set $p (i32.const 8192))
            (global.set $bump (i32.add (i32.const 8192) (i32.add (local.get $n) (i32.const 8))))))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $log (i32.const 2) (i32.const 112) (i32.const 10)))
    ;; an unsupported call must answer Unimplemented (12), not crash
    (i32.eq (call $foreign (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 200) (i32.const 204))
            (i32.const 12)))
  (func $mode (result i32)
    ;; the first byte of x-mode, or 0
    (if (result i32) (i32.eqz (call $get (i32.const 0) (i32.const 32) (i32.const 6) (i32.const 200) (i32.const 204)))
      (then (i32.load8_u (i32.load (i32.const 200))))
      (else (i32.const 0))))
  (func $count (result i32)
    (local $n i32)
    (block $done
      (loop $again
        (local.set $n (i32.const 0))
        ;; value at [208] (ptr) / [212] (size), cas at [216]
        (i32.store (i32.const 216) (i32.const 0))
        (if (i32.eqz (call $sget (i32.const 80) (i32.const 11) (i32.const 208) (i32.const 212) (i32.const 216)))
          (then (local.set $n (i32.load (i32.load (i32.const 208))))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (i32.store (i32.const 220) (local.get $n))
        (br_if $done (i32.eqz (call $sset (i32.const 80) (i32.const 11) (i32.const 220) (i32.const 4) (i32.load (i32.const 216)))))
        (br $again)))
    (local.get $n))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $m i32)
    (local $c i32)
    (local.set $m (call $mode))
    (if (i32.eq (local.get $m) (i32.const 100)) ;; d
      (then
        (drop (call $local (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 48) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1)))
        (return (i32.const 1))))
    (if (i32.eq (local.get $m) (i32.const 116)) (then unreachable)) ;; t
    (if (i32.eq (local.get $m) (i32.const 108)) (then (loop $spin (br $spin)))) ;; l
    (if (i32.eq (local.get $m) (i32.const 103)) ;; g
      (then (loop $more (drop (memory.grow (i32.const 16))) (br $more))))
    (if (i32.eq (local.get $m) (i32.const 97)) ;; a
      (then (drop (call $get (i32.const 0) (i32.const 32) (i32.const 6) (i32.const 0x7ffffff0) (i32.const 204)))))
    (if (i32.eq (local.get $m) (i32.const 115)) ;; s
      (then
        (local.set $c (call $count))
        ;; one decimal digit is enough for the tests
        (i32.store8 (i32.const 224) (i32.add (i32.const 48) (i32.rem_u (local.get $c) (i32.const 10))))
        (drop (call $add (i32.const 0) (i32.const 96) (i32.const 7) (i32.const 224) (i32.const 1)))))
    (drop (call $add (i32.const 0) (i32.const 0) (i32.const 6) (i32.const 16) (i32.const 2)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    ;; the plugin configuration into [240]/[244]
    (if (i32.eqz (call $buf (i32.const 7) (i32.const 0) (i32.const 1024) (i32.const 240) (i32.const 244)))
      (then
        (drop (call $add (i32.const 2) (i32.const 64) (i32.const 11) (i32.load (i32.const 240)) (i32.load (i32.const 244))))))
    (if (i32.eqz (call $prop (i32.const 128) (i32.const 10) (i32.const 248) (i32.const 252)))
      (then
        (drop (call $add (i32.const 2) (i32.const 144) (i32.const 7) (i32.load (i32.const 248)) (i32.load (i32.const 252))))))
    (if (i32.eqz (call $prop (i32.const 160) (i32.const 12) (i32.const 248) (i32.const 252)))
      (then
        (drop (call $add (i32.const 2) (i32.const 176) (i32.const 6) (i32.load (i32.const 248)) (i32.load (i32.const 252))))))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
)
