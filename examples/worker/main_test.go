package main

import (
	"strings"
	"testing"
	"testing/fstest"
)

// The module itself runs under wazero in the wasmhost tests
// (TestWorkerExample); this test keeps the manifest format honest natively.
func TestManifest(t *testing.T) {
	fsys := fstest.MapFS{
		"b.txt":     {Data: []byte("hello\n")},
		"a/one.txt": {Data: []byte("")},
	}
	var out strings.Builder
	n, err := manifest(&out, fsys, "/data")
	if err != nil {
		t.Fatal(err)
	}
	want := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  /data/a/one.txt\n" +
		"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  /data/b.txt\n"
	if n != 2 || out.String() != want {
		t.Errorf("manifest = %d, %q; want 2, %q", n, out.String(), want)
	}
	if _, err := manifest(&out, fstest.MapFS{}, "/nope"); err != nil {
		t.Errorf("empty directory: %v", err)
	}
}
