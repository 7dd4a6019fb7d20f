package edge

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-run/strata/internal/wire"
)

// A dispatched task's payload is written under its /local directory, and
// a file outside it is refused even if a server sent one.
func TestWritePayload(t *testing.T) {
	local := t.TempDir()
	dirs := []hostMount{{Source: t.TempDir(), Destination: allocDirMount}, {Source: local, Destination: taskDirMount}}
	task := &wire.Task{Name: "t", DispatchPayload: &wire.DispatchPayload{File: "in/params.json", Data: []byte(`{"n":1}`)}}
	if err := writePayload(dirs, task); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(local, "in", "params.json")); err != nil || string(b) != `{"n":1}` {
		t.Fatalf("payload file = %q, %v", b, err)
	}
	for _, f := range []string{"../escape", "/etc/passwd", ""} {
		task.DispatchPayload.File = f
		if err := writePayload(dirs, task); err == nil {
			t.Errorf("payload file %q written", f)
		}
	}
	if err := writePayload(dirs, &wire.Task{Name: "plain"}); err != nil {
		t.Fatalf("a task without a payload: %v", err)
	}
}
