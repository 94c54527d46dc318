;; A Proxy-Wasm 0.2.1 test plugin for the trailer callbacks and header maps 1 and 3 (request and
;; response trailers), used by the host's unit tests and by the gateway's (tests/tests/wasm.rs).
;; Each call's status (or value) it reports is written as a decimal field.
;;
;; `proxy_on_request_headers` reports, on the request headers, what maps 1 and 3 answer outside
;; their callbacks:
;;   x-rt-get      proxy_get_header_map_value of map 1 `a`           (NotFound)
;;   x-rt-add      proxy_add_header_map_value of map 1                (NotFound)
;;   x-rt-set      proxy_set_header_map_pairs of map 3                (NotFound)
;;   x-rt-size-st, x-rt-size
;;                 proxy_get_header_map_size of map 1 (Ok, 4: the empty map)
;;
;; `proxy_on_request_trailers(ctx, n)`, on map 1:
;;   `x-trap` present: traps; `x-deny` present: answers 403 "denied" (proxy_send_local_response);
;;   otherwise measures the map (x-size, x-pairs-len: proxy_get_header_map_size and the length
;;   proxy_get_header_map_pairs returns), then adds `x-count: <n>`, `x-in-seen: <x-in>` (when
;;   there), replaces `x-replace` with `new`, removes `x-drop`, adds `host: evil` (a field a
;;   trailer may not carry: the gateway drops it) and `content-length: 9` (managed: no effect),
;;   and reports in `x-other` the status of an add to map 3 (NotFound: not its callback).
;;
;; `proxy_on_response_trailers(ctx, n)`, on map 3:
;;   `x-trap` present: traps; `x-set` present: proxy_set_header_map_pairs to `only: yes` and
;;   `x-set-st: <status>`, nothing else; otherwise adds `x-seen-status: <grpc-status>` (when
;;   there), replaces `grpc-message` with `edited`, adds `x-wasm-trailer: on` and `x-count: <n>`.
(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_header_map_pairs" (func $setpairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_size" (func $size (param i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 8192))
  (data (i32.const 1024) "x-rt-get")
  (data (i32.const 1040) "x-rt-add")
  (data (i32.const 1056) "x-rt-set")
  (data (i32.const 1072) "x-rt-size-st")
  (data (i32.const 1088) "x-rt-size")
  (data (i32.const 1104) "x-trap")
  (data (i32.const 1120) "x-deny")
  (data (i32.const 1136) "denied")
  (data (i32.const 1152) "x-size")
  (data (i32.const 1168) "x-pairs-len")
  (data (i32.const 1184) "x-count")
  (data (i32.const 1200) "x-in")
  (data (i32.const 1216) "x-in-seen")
  (data (i32.const 1232) "x-replace")
  (data (i32.const 1248) "new")
  (data (i32.const 1264) "x-drop")
  (data (i32.const 1280) "host")
  (data (i32.const 1296) "evil")
  (data (i32.const 1312) "content-length")
  (data (i32.const 1328) "9")
  (data (i32.const 1344) "x-other")
  (data (i32.const 1360) "x-set")
  (data (i32.const 1376) "x-set-st")
  (data (i32.const 1392) "grpc-status")
  (data (i32.const 1408) "x-seen-status")
  (data (i32.const 1424) "grpc-message")
  (data (i32.const 1440) "edited")
  (data (i32.const 1456) "x-wasm-trailer")
  (data (i32.const 1472) "on")
  (data (i32.const 1488) "a")
  ;; the empty map, serialized: no pairs
  (data (i32.const 1504) "\00\00\00\00")
  ;; `only: yes`, serialized
  (data (i32.const 1520) "\01\00\00\00\04\00\00\00\03\00\00\00only\00yes\00")
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

  ;; Whether map $map has field $k (its value at [240]/[244] when it has).
  (func $has (param $map i32) (param $k i32) (param $kn i32) (result i32)
    (i32.eqz (call $get (local.get $map) (local.get $k) (local.get $kn) (i32.const 240) (i32.const 244))))

  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))

  (func (export "proxy_on_request_headers") (param i32) (param i32) (param i32) (result i32)
    (local $st i32)
    (call $report (i32.const 0) (i32.const 1024) (i32.const 8)
      (call $get (i32.const 1) (i32.const 1488) (i32.const 1) (i32.const 240) (i32.const 244)))
    (call $report (i32.const 0) (i32.const 1040) (i32.const 8)
      (call $add (i32.const 1) (i32.const 1488) (i32.const 1) (i32.const 1488) (i32.const 1)))
    (call $report (i32.const 0) (i32.const 1056) (i32.const 8)
      (call $setpairs (i32.const 3) (i32.const 1504) (i32.const 4)))
    (i32.store (i32.const 200) (i32.const 0))
    (local.set $st (call $size (i32.const 1) (i32.const 200)))
    (call $report (i32.const 0) (i32.const 1072) (i32.const 12) (local.get $st))
    (call $report (i32.const 0) (i32.const 1088) (i32.const 9) (i32.load (i32.const 200)))
    (i32.const 0))

  (func (export "proxy_on_request_trailers") (param $ctx i32) (param $n i32) (result i32)
    (if (call $has (i32.const 1) (i32.const 1104) (i32.const 6)) (then unreachable))
    (if (call $has (i32.const 1) (i32.const 1120) (i32.const 6))
      (then
        (drop (call $local (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 1136) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1)))
        (return (i32.const 1))))
    ;; both measured before either is reported (a report adds a field)
    (i32.store (i32.const 200) (i32.const 0))
    (i32.store (i32.const 208) (i32.const 0))
    (drop (call $size (i32.const 1) (i32.const 200)))
    (drop (call $pairs (i32.const 1) (i32.const 204) (i32.const 208)))
    (call $report (i32.const 1) (i32.const 1152) (i32.const 6) (i32.load (i32.const 200)))
    (call $report (i32.const 1) (i32.const 1168) (i32.const 11) (i32.load (i32.const 208)))
    (call $report (i32.const 1) (i32.const 1184) (i32.const 7) (local.get $n))
    (if (call $has (i32.const 1) (i32.const 1200) (i32.const 4))
      (then
        (drop (call $add (i32.const 1) (i32.const 1216) (i32.const 9) (i32.load (i32.const 240)) (i32.load (i32.const 244))))))
    (drop (call $replace (i32.const 1) (i32.const 1232) (i32.const 9) (i32.const 1248) (i32.const 3)))
    (drop (call $remove (i32.const 1) (i32.const 1264) (i32.const 6)))
    (drop (call $add (i32.const 1) (i32.const 1280) (i32.const 4) (i32.const 1296) (i32.const 4)))
    (drop (call $add (i32.const 1) (i32.const 1312) (i32.const 14) (i32.const 1328) (i32.const 1)))
    (call $report (i32.const 1) (i32.const 1344) (i32.const 7)
      (call $add (i32.const 3) (i32.const 1488) (i32.const 1) (i32.const 1488) (i32.const 1)))
    (i32.const 0))

  (func (export "proxy_on_response_trailers") (param $ctx i32) (param $n i32) (result i32)
    (if (call $has (i32.const 3) (i32.const 1104) (i32.const 6)) (then unreachable))
    (if (call $has (i32.const 3) (i32.const 1360) (i32.const 5))
      (then
        (call $report (i32.const 3) (i32.const 1376) (i32.const 8)
          (call $setpairs (i32.const 3) (i32.const 1520) (i32.const 21)))
        (return (i32.const 0))))
    (if (call $has (i32.const 3) (i32.const 1392) (i32.const 11))
      (then
        (drop (call $add (i32.const 3) (i32.const 1408) (i32.const 13) (i32.load (i32.const 240)) (i32.load (i32.const 244))))))
    (drop (call $replace (i32.const 3) (i32.const 1424) (i32.const 12) (i32.const 1440) (i32.const 6)))
    (drop (call $add (i32.const 3) (i32.const 1456) (i32.const 14) (i32.const 1472) (i32.const 2)))
    (call $report (i32.const 3) (i32.const 1184) (i32.const 7) (local.get $n))
    (i32.const 0))

  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
)
