package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
)

func main() {
	out := flag.String("out", "", "write the manifest to this file instead of stdout")
	flag.Parse()
	dir := "/data"
	if flag.NArg() > 0 {
		dir = flag.Arg(0)
	}
	if err := run(dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run writes dir's manifest to stdout, or to the file out.
func run(dir, out string) error {
	w := io.Writer(os.Stdout)
	var f *os.File
	if out != "" {
		var err error
		if f, err = os.Create(out); err != nil {
			return err
		}
		w = f
	}
	n, err := manifest(w, os.DirFS(dir), dir)
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "worker: %d files in %s\n", n, dir)
	return nil
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
