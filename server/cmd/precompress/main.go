// Command precompress writes a brotli (FILE.br) and a gzip (FILE.gz) copy of each file it is
// given, at the best compression each format offers, so that the server sends app.wasm
// compressed without spending CPU on every request.
//
// Usage:
//
//	go run ./server/cmd/precompress public/web/app.wasm
package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/andybalholm/brotli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: precompress FILE...")
		os.Exit(2)
	}
	for _, name := range os.Args[1:] {
		if err := precompress(name); err != nil {
			fmt.Fprintln(os.Stderr, "precompress:", err)
			os.Exit(1)
		}
	}
}

// precompress writes name.br and name.gz next to name.
func precompress(name string) error {
	raw, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	encoders := []struct {
		ext string
		new func(io.Writer) (io.WriteCloser, error)
	}{
		{".br", func(w io.Writer) (io.WriteCloser, error) {
			return brotli.NewWriterLevel(w, brotli.BestCompression), nil
		}},
		{".gz", func(w io.Writer) (io.WriteCloser, error) {
			return gzip.NewWriterLevel(w, gzip.BestCompression)
		}},
	}
	for _, e := range encoders {
		n, err := writeCompressed(name+e.ext, raw, e.new)
		if err != nil {
			return err
		}
		fmt.Printf("%s: %d bytes (%.1f%% of %d)\n", filepath.Base(name+e.ext), n, 100*float64(n)/float64(len(raw)), len(raw))
	}
	return nil
}

// writeCompressed compresses raw into a temporary file and renames it to name, so that a reader
// never sees a half-written file. It returns the compressed size.
func writeCompressed(name string, raw []byte, newEncoder func(io.Writer) (io.WriteCloser, error)) (int64, error) {
	// A leading dot keeps a half-written file out of //go:embed patterns.
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	enc, err := newEncoder(f)
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := enc.Write(raw); err != nil {
		f.Close()
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if err := enc.Close(); err != nil {
		f.Close()
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return 0, err
	}
	return st.Size(), os.Rename(f.Name(), name)
}
