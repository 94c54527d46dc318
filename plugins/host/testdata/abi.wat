;; A second Proxy-Wasm 0.2.1 test plugin, for the host calls the probe does not make. Each call's
;; status (and value) is reported as a decimal header field, so the tests assert the host's
;; answers one by one.
;;
;; Root context: `proxy_on_vm_start` registers the shared queue `abi-q` of its VM (the plugin's
;; name); `proxy_on_queue_ready(root, queue)` dequeues one item and stores it in the shared data
;; `abi-got`, and the ids it was called with in `abi-ready` ("<root>/<queue>").
;;
;; `proxy_on_request_headers`, when the request has `x-call`: calls out to cluster `c` (status in
;; `x-call-status`) and pauses; its `proxy_on_http_call_response` reports the answer's field count
;; in `x-answer` and resumes the request with `proxy_continue_request` (status in `x-resumed`).
;; When the request has `x-vm: <plugin>`: resolves that plugin's
;; `abi-q`, enqueues `hello` and reports the status (of the resolve if it failed) in `x-enq`, and
;; does nothing else. Otherwise it adds to the request:
;;   x-log-st, x-log        proxy_get_log_level
;;   x-size-st, x-size      proxy_get_header_map_size of the request headers
;;   x-pairs-len            the byte length proxy_get_header_map_pairs returns for them
;;   x-size-bad             proxy_get_header_map_size of map 99
;;   x-setprop, x-getprop   proxy_set_property / proxy_get_property of `my\0key` = `v1`
;;   x-prop                 the value read back
;;   x-set-builtin          proxy_set_property of `route_name` (has a value in the test)
;;   x-set-unset            proxy_set_property of `consumer` (none in the test: still built in)
;;   x-eff-self, x-eff-root, x-eff-bad
;;                          proxy_set_effective_context of this context, the root (1), 777777
;;   x-done                 proxy_done
;;   x-close, x-close-bad   proxy_close_stream of HTTP_REQUEST, of stream type 9
;;   x-cont-req, x-cont-resp, x-cont-bad
;;                          proxy_continue_request, proxy_continue_response (0.2.0),
;;                          proxy_continue_stream of stream type 9
;; `proxy_on_response_headers` adds `x-prop-resp: <my\0key>` and `x-size`/`x-pairs-len` for the
;; response headers.
(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_size" (func $size (param i32 i32) (result i32)))
  (import "env" "proxy_get_log_level" (func $level (param i32) (result i32)))
  (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $setprop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $eff (param i32) (result i32)))
  (import "env" "proxy_done" (func $done (result i32)))
  (import "env" "proxy_close_stream" (func $close (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $cont (param i32) (result i32)))
  (import "env" "proxy_continue_request" (func $contreq (result i32)))
  (import "env" "proxy_continue_response" (func $contresp (result i32)))
  (import "env" "proxy_register_shared_queue" (func $qreg (param i32 i32 i32) (result i32)))
  (import "env" "proxy_resolve_shared_queue" (func $qres (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $qenq (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $qdeq (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $sset (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 8192))
  (data (i32.const 1024) "x-log-st")
  (data (i32.const 1056) "x-log")
  (data (i32.const 1088) "x-size-st")
  (data (i32.const 1120) "x-size")
  (data (i32.const 1152) "x-pairs-len")
  (data (i32.const 1184) "x-size-bad")
  (data (i32.const 1216) "x-setprop")
  (data (i32.const 1248) "x-getprop")
  (data (i32.const 1280) "x-prop")
  (data (i32.const 1312) "x-set-builtin")
  (data (i32.const 1344) "x-set-unset")
  (data (i32.const 1376) "my\00key")
  (data (i32.const 1392) "v1")
  (data (i32.const 1400) "route_name")
  (data (i32.const 1416) "consumer")
  (data (i32.const 1440) "x-eff-self")
  (data (i32.const 1472) "x-eff-root")
  (data (i32.const 1504) "x-eff-bad")
  (data (i32.const 1536) "x-done")
  (data (i32.const 1568) "x-close")
  (data (i32.const 1600) "x-close-bad")
  (data (i32.const 1632) "x-cont-req")
  (data (i32.const 1664) "x-cont-resp")
  (data (i32.const 1696) "x-cont-bad")
  (data (i32.const 1728) "x-vm")
  (data (i32.const 1760) "abi-q")
  (data (i32.const 1792) "x-enq")
  (data (i32.const 1824) "hello")
  (data (i32.const 1856) "abi-got")
  (data (i32.const 1888) "abi-ready")
  (data (i32.const 1920) "x-prop-resp")
  ;; the callout's head, serialized: :path /x, :method GET, :authority c
  (data (i32.const 2048) "\03\00\00\00\05\00\00\00\02\00\00\00\07\00\00\00\03\00\00\00\0a\00\00\00\01\00\00\00:path\00/x\00:method\00GET\00:authority\00c\00")
  (data (i32.const 2200) "c")
  (data (i32.const 2208) "x-call")
  (data (i32.const 2224) "x-resumed")
  (data (i32.const 2240) "x-call-status")
  (data (i32.const 2256) "x-answer")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (i32.add (local.get $n) (i32.const 8))))
    (if (i32.gt_u (global.get $bump) (i32.const 120000))
      (then (global.set $bump (i32.const 8192))
            (local.set $p (i32.const 8192))
            (global.set $bump (i32.add (i32.const 8192) (i32.add (local.get $n) (i32.const 8))))))
    (local.get $p))

  ;; The decimal digits of $v at [600]; their count.
  (func $dec (param $v i32) (result i32)
    (local $n i32) (local $t i32) (local $i i32)
    (local.set $t (local.get $v))
    (local.set $n (i32.const 1))
    (block $counted
      (loop $more
        (br_if $counted (i32.lt_u (local.get $t) (i32.const 10)))
        (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $more)))
    (local.set $i (local.get $n))
    (loop $digit
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (i32.const 600) (local.get $i))
                  (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $digit (local.get $i)))
    (local.get $n))

  ;; Adds `name: <decimal of v>` to map $map.
  (func $report (param $map i32) (param $k i32) (param $kn i32) (param $v i32)
    (local $n i32)
    (local.set $n (call $dec (local.get $v)))
    (drop (call $add (local.get $map) (local.get $k) (local.get $kn) (i32.const 600) (local.get $n))))

  ;; x-size and x-pairs-len of map $map.
  ;; Both are measured before either is reported (a report adds a field).
  (func $sizes (param $map i32)
    (local $st i32)
    (i32.store (i32.const 200) (i32.const 0))
    (i32.store (i32.const 208) (i32.const 0))
    (local.set $st (call $size (local.get $map) (i32.const 200)))
    (drop (call $pairs (local.get $map) (i32.const 204) (i32.const 208)))
    (call $report (local.get $map) (i32.const 1088) (i32.const 9) (local.get $st))
    (call $report (local.get $map) (i32.const 1120) (i32.const 6) (i32.load (i32.const 200)))
    (call $report (local.get $map) (i32.const 1152) (i32.const 11) (i32.load (i32.const 208))))

  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param $root i32) (param i32) (result i32)
    (i32.eqz (call $qreg (i32.const 1760) (i32.const 5) (i32.const 212))))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))

  (func (export "proxy_on_queue_ready") (param $root i32) (param $queue i32)
    (local $n i32)
    (if (i32.eqz (call $qdeq (local.get $queue) (i32.const 216) (i32.const 220)))
      (then
        (drop (call $sset (i32.const 1856) (i32.const 7) (i32.load (i32.const 216)) (i32.load (i32.const 220)) (i32.const 0)))))
    ;; "<root>/<queue>" at [640]
    (local.set $n (call $dec (local.get $root)))
    (memory.copy (i32.const 640) (i32.const 600) (local.get $n))
    (i32.store8 (i32.add (i32.const 640) (local.get $n)) (i32.const 47))
    (local.set $n (i32.add (local.get $n) (i32.const 1)))
    (memory.copy (i32.add (i32.const 640) (local.get $n)) (i32.const 600) (call $dec (local.get $queue)))
    (local.set $n (i32.add (local.get $n) (call $dec (local.get $queue))))
    (drop (call $sset (i32.const 1888) (i32.const 9) (i32.const 640) (local.get $n) (i32.const 0))))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32) (param i32) (result i32)
    ;; x-vm: enqueue to that plugin's queue
    (local $st i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 1728) (i32.const 4) (i32.const 224) (i32.const 228)))
      (then
        (local.set $st (call $qres (i32.load (i32.const 224)) (i32.load (i32.const 228)) (i32.const 1760) (i32.const 5) (i32.const 232)))
        (if (i32.eqz (local.get $st))
          (then (local.set $st (call $qenq (i32.load (i32.const 232)) (i32.const 1824) (i32.const 5)))))
        (call $report (i32.const 0) (i32.const 1792) (i32.const 5) (local.get $st))
        (return (i32.const 0))))
    ;; x-call: a callout to cluster `c`, and the request paused until it is answered
    (if (i32.eqz (call $get (i32.const 0) (i32.const 2208) (i32.const 6) (i32.const 224) (i32.const 228)))
      (then
        (call $report (i32.const 0) (i32.const 2240) (i32.const 13)
          (call $call (i32.const 2200) (i32.const 1) (i32.const 2048) (i32.const 62)
                      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 248)))
        (return (i32.const 1))))
    ;; header map sizes, first: the request's own fields
    (call $sizes (i32.const 0))
    ;; log level
    (i32.store (i32.const 236) (i32.const 99))
    (call $report (i32.const 0) (i32.const 1024) (i32.const 8) (call $level (i32.const 236)))
    (call $report (i32.const 0) (i32.const 1056) (i32.const 5) (i32.load (i32.const 236)))
    (call $report (i32.const 0) (i32.const 1184) (i32.const 10) (call $size (i32.const 99) (i32.const 200)))
    ;; properties
    (call $report (i32.const 0) (i32.const 1216) (i32.const 9)
      (call $setprop (i32.const 1376) (i32.const 6) (i32.const 1392) (i32.const 2)))
    (call $report (i32.const 0) (i32.const 1248) (i32.const 9)
      (call $prop (i32.const 1376) (i32.const 6) (i32.const 240) (i32.const 244)))
    (drop (call $add (i32.const 0) (i32.const 1280) (i32.const 6) (i32.load (i32.const 240)) (i32.load (i32.const 244))))
    (call $report (i32.const 0) (i32.const 1312) (i32.const 13)
      (call $setprop (i32.const 1400) (i32.const 10) (i32.const 1392) (i32.const 2)))
    (call $report (i32.const 0) (i32.const 1344) (i32.const 11)
      (call $setprop (i32.const 1416) (i32.const 8) (i32.const 1392) (i32.const 2)))
    ;; contexts
    (call $report (i32.const 0) (i32.const 1440) (i32.const 10) (call $eff (local.get $ctx)))
    (call $report (i32.const 0) (i32.const 1472) (i32.const 10) (call $eff (i32.const 1)))
    (call $report (i32.const 0) (i32.const 1504) (i32.const 9) (call $eff (i32.const 777777)))
    (drop (call $eff (local.get $ctx)))
    (call $report (i32.const 0) (i32.const 1536) (i32.const 6) (call $done))
    ;; stream control
    (call $report (i32.const 0) (i32.const 1568) (i32.const 7) (call $close (i32.const 0)))
    (call $report (i32.const 0) (i32.const 1600) (i32.const 11) (call $close (i32.const 9)))
    (call $report (i32.const 0) (i32.const 1632) (i32.const 10) (call $contreq))
    (call $report (i32.const 0) (i32.const 1664) (i32.const 11) (call $contresp))
    (call $report (i32.const 0) (i32.const 1696) (i32.const 10) (call $cont (i32.const 9)))
    (i32.const 0))

  (func (export "proxy_on_response_headers") (param i32) (param i32) (param i32) (result i32)
    (if (i32.eqz (call $prop (i32.const 1376) (i32.const 6) (i32.const 240) (i32.const 244)))
      (then
        (drop (call $add (i32.const 2) (i32.const 1920) (i32.const 11) (i32.load (i32.const 240)) (i32.load (i32.const 244))))))
    (call $sizes (i32.const 2))
    (i32.const 0))
  ;; The callout's answer: the number of its fields in `x-answer`, and the request resumed with the
  ;; 0.2.0 call (status in `x-resumed`).
  (func (export "proxy_on_http_call_response") (param i32) (param $token i32) (param $n i32) (param i32) (param i32)
    (call $report (i32.const 0) (i32.const 2256) (i32.const 8) (local.get $n))
    (call $report (i32.const 0) (i32.const 2224) (i32.const 9) (call $contreq)))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
)
