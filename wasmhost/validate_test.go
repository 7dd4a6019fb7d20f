package wasmhost

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	hello := goModule(t, helloPkg)
	tests := []struct {
		name    string
		module  []byte
		wantErr string // "" = valid
	}{
		{"hand-assembled writer", okModule, ""},
		{"hand-assembled loop", loopModule, ""},
		{"go hello", hello, ""},
		{"empty", nil, "not a WebAssembly module: bad magic bytes"},
		{"not wasm", []byte("#!/bin/sh\necho hello\n"), "not a WebAssembly module: bad magic bytes"},
		{"magic only", []byte("\x00asm"), "truncated WebAssembly module"},
		{"version 2", []byte("\x00asm\x02\x00\x00\x00"), "unsupported WebAssembly binary version 2, want 1"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), "a WebAssembly component, not a core module"},
		{"truncated", hello[:len(hello)/2], "invalid WebAssembly: "},
		{"truncated tiny", okModule[:len(okModule)-3], "invalid WebAssembly: "},
		{
			"no _start",
			testModule{
				types:   []funcType{typeStart},
				funcs:   []wasmFunc{{typ: 0}},
				exports: []wasmExport{{name: "main", kind: externFunc, idx: 0}},
			}.encode(),
			"module does not export _start",
		},
		{
			"reactor",
			testModule{
				types:   []funcType{typeStart},
				funcs:   []wasmFunc{{typ: 0}},
				exports: []wasmExport{{name: "_initialize", kind: externFunc, idx: 0}},
			}.encode(),
			"module does not export _start: it is a WASI reactor",
		},
		{
			"_start with params",
			testModule{
				types:   []funcType{typeExit},
				funcs:   []wasmFunc{{typ: 0}},
				exports: []wasmExport{{name: "_start", kind: externFunc, idx: 0}},
			}.encode(),
			"module exports _start with signature (i32), want ()",
		},
		{
			"import from env",
			testModule{
				types:   []funcType{typeStart},
				imports: []wasmImport{funcImport("env", "foo", 0)},
				funcs:   []wasmFunc{{typ: 0}},
				exports: []wasmExport{{name: "_start", kind: externFunc, idx: 1}},
			}.encode(),
			"module imports env.foo: only wasi_snapshot_preview1 is available",
		},
		{
			"memory import from env",
			testModule{
				types:   []funcType{typeStart},
				imports: []wasmImport{{module: "env", name: "memory", kind: externMemory, desc: []byte{0x00, 0x01}}},
				funcs:   []wasmFunc{{typ: 0}},
				exports: []wasmExport{{name: "_start", kind: externFunc, idx: 0}},
			}.encode(),
			"module imports env.memory: only wasi_snapshot_preview1 is available",
		},
		{
			"global import from wasi",
			testModule{
				types:   []funcType{typeStart},
				imports: []wasmImport{{module: wasi, name: "g", kind: externGlobal, desc: []byte{i32, 0x00}}},
				funcs:   []wasmFunc{{typ: 0}},
				exports: []wasmExport{{name: "_start", kind: externFunc, idx: 0}},
			}.encode(),
			"module imports global wasi_snapshot_preview1.g: wasi_snapshot_preview1 provides only functions",
		},
		{
			"unknown wasi function",
			testModule{
				types:   []funcType{typeStart},
				imports: []wasmImport{funcImport(wasi, "sock_connect", 0)},
				funcs:   []wasmFunc{{typ: 0}},
				exports: []wasmExport{{name: "_start", kind: externFunc, idx: 1}},
			}.encode(),
			"module imports wasi_snapshot_preview1.sock_connect, which is not a WASI preview 1 function",
		},
		{
			"wasi function with wrong signature",
			testModule{
				types:   []funcType{typeStart},
				imports: []wasmImport{funcImport(wasi, "fd_write", 0)},
				funcs:   []wasmFunc{{typ: 0}},
				exports: []wasmExport{{name: "_start", kind: externFunc, idx: 1}},
			}.encode(),
			"module imports wasi_snapshot_preview1.fd_write with signature (), want (i32,i32,i32,i32)->i32",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(context.Background(), tc.module)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded, want error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate error = %q, want it to contain %q", err, tc.wantErr)
			}
			if !errors.Is(err, ErrInvalidModule) {
				t.Errorf("Validate error %q is not ErrInvalidModule", err)
			}
		})
	}
}

// Compile applies the same checks (without the interpreter pass) and returns
// the same messages.
func TestCompileRejectsInvalidModules(t *testing.T) {
	h := newHost(t)
	for name, tc := range map[string]struct {
		module  []byte
		wantErr string
	}{
		"not wasm":  {[]byte("hello"), "not a WebAssembly module: bad magic bytes"},
		"truncated": {okModule[:len(okModule)-3], "invalid WebAssembly: "},
		"no _start": {testModule{types: []funcType{typeStart}, funcs: []wasmFunc{{typ: 0}}}.encode(), "module does not export _start"},
		"env import": {testModule{
			types:   []funcType{typeStart},
			imports: []wasmImport{funcImport("env", "foo", 0)},
			funcs:   []wasmFunc{{typ: 0}},
			exports: []wasmExport{{name: "_start", kind: externFunc, idx: 1}},
		}.encode(), "module imports env.foo: only wasi_snapshot_preview1 is available"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.Compile(context.Background(), Digest(tc.module), tc.module)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidModule) {
				t.Fatalf("Compile error = %v, want ErrInvalidModule containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestImportKinds(t *testing.T) {
	b := testModule{
		types: []funcType{typeStart},
		imports: []wasmImport{
			funcImport(wasi, "proc_exit", 0),
			{module: "env", name: "mem", kind: externMemory, desc: []byte{0x01, 0x01, 0x02}},
			{module: "env", name: "tab", kind: externTable, desc: []byte{0x70, 0x00, 0x00}},
			{module: "env", name: "g", kind: externGlobal, desc: []byte{i32, 0x01}},
		},
	}.encode()
	got, err := importKinds(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []importEntry{
		{wasi, "proc_exit", externFunc},
		{"env", "mem", externMemory},
		{"env", "tab", externTable},
		{"env", "g", externGlobal},
	}
	if len(got) != len(want) {
		t.Fatalf("importKinds = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("import %d = %v, want %v", i, got[i], want[i])
		}
	}
	if _, err := importKinds(b[:len(b)-2]); err == nil {
		t.Error("importKinds of a truncated import section succeeded")
	}
}
