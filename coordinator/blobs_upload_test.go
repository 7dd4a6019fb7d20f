package coordinator

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A push is streamed to a temporary file and hashed as it is written; one
// over the limit is cut when it passes it (413 naming the limit) and
// leaves nothing behind; one within it is adopted under its digest.
func TestUploadStreamedAndCutAtLimit(t *testing.T) {
	dir := t.TempDir()
	b, err := newBlobStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	over := &countingReader{r: io.LimitReader(zeros{}, 1<<20)}
	_, err = b.ingest(over, 4096)
	var tl tooLarge
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), "4 KiB") {
		t.Fatalf("an upload over the limit: %v, want tooLarge naming 4 KiB", err)
	}
	if over.n > 4096+32<<10 {
		t.Fatalf("read %d bytes of an upload over a 4 KiB limit: it was not cut at the limit", over.n)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "upload-*")); len(left) != 0 {
		t.Fatalf("a refused upload left %v", left)
	}

	data := bytes.Repeat([]byte("module"), 500)
	u, err := b.ingest(bytes.NewReader(data), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if u.digest != Digest(data) || u.size != int64(len(data)) {
		t.Fatalf("upload %s of %d bytes, want %s of %d", u.digest, u.size, Digest(data), len(data))
	}
	mapped, unmap, err := u.bytes()
	if err != nil || !bytes.Equal(mapped, data) {
		t.Fatalf("mapped upload differs (%v)", err)
	}
	unmap()
	if err := b.adopt(u); err != nil {
		t.Fatal(err)
	}
	rc, size, err := b.Open(u.digest)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("adopted blob: %d bytes, %v", size, err)
	}
	rc.Close()
	if _, err := os.Stat(u.path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary file stays after adoption: %v", err)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
