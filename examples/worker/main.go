package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
)

func main() {
	dir := "/data"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	n, err := manifest(os.Stdout, os.DirFS(dir), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "worker: %d files in %s\n", n, dir)
}

// manifest writes "<sha256>  <path>" for every regular file under fsys, in
// lexical order (sha256sum's format), and returns how many it wrote. name is
// the directory's name in messages and paths.
func manifest(w io.Writer, fsys fs.FS, name string) (int, error) {
	n := 0
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("%s: %w", path.Join(name, p), err)
		}
		fmt.Fprintf(w, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), path.Join(name, p))
		n++
		return nil
	})
	return n, err
}
