;; tiny: the smallest useful Strata http-mode (WAGI) module. Every request
;; gets "Content-Type: text/plain", a blank line and "hello" on stdout, which
;; the agent turns into "HTTP/1.1 200 OK" with a 5-byte body.
;;
;; Built with wat2wasm (wabt), or by `go test ./examples/tiny -update`, which
;; assembles the same bytes with the encoder in tiny_test.go:
;;
;;   wat2wasm -o examples/tiny/tiny.wasm examples/tiny/tiny.wat
(module
  ;; fd_write(fd, iovs, iovs_len, nwritten) -> errno
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  ;; At 0, one iovec {buf = 8, len = 31}; at 8, the 31-byte response. The
  ;; number of bytes written goes to 40, after it.
  (data (i32.const 0) "\08\00\00\00\1f\00\00\00Content-Type: text/plain\n\nhello")

  (func (export "_start")
    (drop (call $fd_write
      (i32.const 1)     ;; stdout
      (i32.const 0)     ;; iovs
      (i32.const 1)     ;; one iovec
      (i32.const 40)))) ;; nwritten
)
