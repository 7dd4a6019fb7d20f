package tiny

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/strata-run/strata/spec"
	"github.com/strata-run/strata/wasmhost"
)

var update = flag.Bool("update", false, "rewrite tiny.wasm from the encoder")

// The module of tiny.wat, section by section (WebAssembly core spec 5.5).
func encodeTiny() []byte {
	const (
		i32      = 0x7f
		funcType = 0x60
		extFunc  = 0x00
		extMem   = 0x02
	)
	response := "Content-Type: text/plain\n\nhello"
	data := append([]byte{8, 0, 0, 0, byte(len(response)), 0, 0, 0}, response...) // iovec{8, 31}, then the response

	var out []byte
	out = append(out, 0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00)
	section := func(id byte, count int, body ...[]byte) {
		content := uleb(count)
		for _, b := range body {
			content = append(content, b...)
		}
		out = append(out, id)
		out = append(out, uleb(len(content))...)
		out = append(out, content...)
	}
	section(1, 2, // types: 0 = fd_write's, 1 = _start's
		[]byte{funcType, 4, i32, i32, i32, i32, 1, i32},
		[]byte{funcType, 0, 0})
	section(2, 1, // imports: func 0 = wasi_snapshot_preview1.fd_write, type 0
		name("wasi_snapshot_preview1"), name("fd_write"), []byte{extFunc, 0})
	// functions: func 1 has type 1
	section(3, 1, []byte{1})
	// memory: min 1 page, no max
	section(5, 1, []byte{0x00, 0x01})
	// exports
	section(7, 2,
		name("memory"), []byte{extMem, 0},
		name("_start"), []byte{extFunc, 1})
	body := []byte{
		0x00,       // no locals
		0x41, 0x01, // i32.const 1 (stdout)
		0x41, 0x00, // i32.const 0 (iovs)
		0x41, 0x01, // i32.const 1 (one iovec)
		0x41, 0x28, // i32.const 40 (nwritten)
		0x10, 0x00, // call 0 (fd_write)
		0x1a, // drop
		0x0b, // end
	}
	section(10, 1, uleb(len(body)), body) // code
	seg := []byte{0x00, 0x41, 0x00, 0x0b} // active segment, memory 0, offset i32.const 0
	section(11, 1, seg, uleb(len(data)), data)
	return out
}

func uleb(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func name(s string) []byte { return append(uleb(len(s)), s...) }

func TestTinyWasm(t *testing.T) {
	want := encodeTiny()
	if *update {
		if err := os.WriteFile("tiny.wasm", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("tiny.wasm (%d bytes) is not what tiny.wat's structure encodes to (%d bytes): run go test ./examples/tiny -update, or wat2wasm", len(got), len(want))
	}
	if len(got) > 300 {
		t.Errorf("tiny.wasm is %d bytes, want a few hundred at most", len(got))
	}

	// Where wabt is installed, tiny.wat itself must assemble to the same bytes.
	if wat2wasm, err := exec.LookPath("wat2wasm"); err == nil {
		out := filepath.Join(t.TempDir(), "tiny.wasm")
		if msg, err := exec.Command(wat2wasm, "-o", out, "tiny.wat").CombinedOutput(); err != nil {
			t.Fatalf("wat2wasm: %v\n%s", err, msg)
		}
		wabt, _ := os.ReadFile(out)
		if !bytes.Equal(wabt, got) {
			t.Errorf("wat2wasm tiny.wat differs from tiny.wasm: tiny.wat and encodeTiny have drifted apart")
		}
	} else {
		t.Log("wat2wasm not installed: tiny.wat checked through encodeTiny only")
	}
}

// TestTinyServes runs tiny.wasm the way the agent does, over TCP.
func TestTinyServes(t *testing.T) {
	b, err := os.ReadFile("tiny.wasm")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	if err := wasmhost.Validate(ctx, b); err != nil {
		t.Fatal(err)
	}
	m, err := h.Compile(ctx, wasmhost.Digest(b), b)
	if err != nil {
		t.Fatal(err)
	}
	handler, err := h.HTTPHandler(m, wasmhost.HTTPConfig{Name: "tiny", Limits: wasmhost.Limits{MaxMemory: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	defer srv.Close()
	for _, path := range []string{"/", "/anything?x=1"} {
		resp, err := srv.Client().Post(srv.URL+path, "text/plain", bytes.NewReader([]byte("ignored")))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "hello" || resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("POST %s: %d %q %q, want 200 \"hello\" text/plain", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
}

func TestJobFile(t *testing.T) {
	b, err := os.ReadFile("tiny.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spec.Parse("tiny.hcl", b); err != nil {
		t.Fatal(err)
	}
}
