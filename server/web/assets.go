package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/andybalholm/brotli"
)

// asset is one file of the web root, kept in memory, with the precompressed forms the build
// wrote next to it (see server/cmd/precompress).
type asset struct {
	contentType string
	raw         []byte
	hash        string // hex SHA-256 of raw
	br, gz      []byte // nil when absent
}

// contentTypes maps the extensions of the web root's files to their media types; the table is
// ours so that the answer does not depend on the host's mime database.
var contentTypes = map[string]string{
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".json":        "application/json",
	".webmanifest": "application/manifest+json",
	".png":         "image/png",
	".svg":         "image/svg+xml",
	".txt":         "text/plain; charset=utf-8",
	".wasm":        "application/wasm",
}

// loadAssets reads every file of root. A file named X.br or X.gz is the brotli or gzip form of X,
// served in its place to clients that accept it, never on its own. A gzip form that does not
// match X (a build that stopped halfway) is dropped with its brotli twin, with a warning: the
// raw file is served instead of a stale one.
func loadAssets(root fs.FS, logger *slog.Logger) (map[string]*asset, error) {
	assets := make(map[string]*asset)
	compressed := make(map[string][]byte)
	err := fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		switch path.Ext(name) {
		case ".br", ".gz":
			compressed[name] = body
			return nil
		}
		assets[name] = &asset{contentType: contentType(name), raw: body, hash: hashOf(body)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: read web root: %w", err)
	}
	for name, a := range assets {
		a.br, a.gz = compressed[name+".br"], compressed[name+".gz"]
		if a.gz != nil && !gzipMatches(a.gz, a.raw) {
			logger.Warn("web_precompressed_stale", "file", name, "hint", "run make wasm")
			a.br, a.gz = nil, nil
		}
		if a.br == nil && a.gz == nil && compressible(name, a.raw) {
			a.br, a.gz = compressForms(a.raw)
		}
	}
	return assets, nil
}

// newAsset is a file made in memory, compressed when that pays.
func newAsset(name string, raw []byte) *asset {
	a := &asset{contentType: contentType(name), raw: raw, hash: hashOf(raw)}
	if compressible(name, raw) {
		a.br, a.gz = compressForms(raw)
	}
	return a
}

func contentType(name string) string {
	if ct := contentTypes[path.Ext(name)]; ct != "" {
		return ct
	}
	return "application/octet-stream"
}

func hashOf(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// compressInMemoryMax bounds the files compressed when the server starts: larger ones (app.wasm)
// are compressed by the build (server/cmd/precompress), which takes seconds.
const compressInMemoryMax = 1 << 20

// compressible reports whether a file is text that the server compresses when it starts: the
// style sheet, scripts, the manifest, SVG.
func compressible(name string, raw []byte) bool {
	switch path.Ext(name) {
	case ".css", ".js", ".json", ".webmanifest", ".svg", ".txt":
		return len(raw) <= compressInMemoryMax
	}
	return false
}

// compressForms returns the brotli and gzip forms of raw; a form that is not smaller than raw
// is left out (nil). Brotli runs at its default level, not its best: the best took the server
// about a second to start (several under the race detector) for a few per cent of a hundred
// kilobytes, while the large app.wasm is compressed at the best level by the build.
func compressForms(raw []byte) (br, gz []byte) {
	var b, g bytes.Buffer
	bw := brotli.NewWriterLevel(&b, brotli.DefaultCompression)
	gw, _ := gzip.NewWriterLevel(&g, gzip.BestCompression) // the level is valid
	// Writes to a bytes.Buffer do not fail.
	bw.Write(raw)
	bw.Close()
	gw.Write(raw)
	gw.Close()
	if b.Len() < len(raw) {
		br = b.Bytes()
	}
	if g.Len() < len(raw) {
		gz = g.Bytes()
	}
	return br, gz
}

// gzipMatches reports whether gz is a gzip stream of raw, by the CRC-32 and the length that end
// every gzip stream, without decompressing it.
func gzipMatches(gz, raw []byte) bool {
	if len(gz) < 18 {
		return false
	}
	trailer := gz[len(gz)-8:]
	return binary.LittleEndian.Uint32(trailer) == crc32.ChecksumIEEE(raw) &&
		binary.LittleEndian.Uint32(trailer[4:]) == uint32(len(raw))
}

// serve answers with the asset, compressed when the client accepts a form the build made.
// Every response is revalidated (Cache-Control: no-cache) against a strong ETag per form, so a
// new deploy is seen at once and an unchanged file costs a 304.
func (a *asset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	body, etag := a.raw, a.hash
	if a.br != nil || a.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		switch pickEncoding(r.Header.Get("Accept-Encoding"), a.br != nil, a.gz != nil) {
		case "br":
			body, etag = a.br, etag+"-br"
			h.Set("Content-Encoding", "br")
		case "gzip":
			body, etag = a.gz, etag+"-gz"
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", strconv.Quote(etag))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// pickEncoding chooses the content coding for an Accept-Encoding header among the forms there
// are: "br" before "gzip" (smaller) when both are acceptable, "" for the raw file. A coding with
// q=0 is refused; "*" accepts any coding not named.
func pickEncoding(accept string, haveBr, haveGz bool) string {
	q := make(map[string]float64)
	for part := range strings.SplitSeq(accept, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		weight := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					weight = f
				}
			}
		}
		q[name] = weight
	}
	acceptable := func(coding string) bool {
		if w, ok := q[coding]; ok {
			return w > 0
		}
		w, ok := q["*"]
		return ok && w > 0
	}
	switch {
	case haveBr && acceptable("br"):
		return "br"
	case haveGz && (acceptable("gzip") || acceptable("x-gzip")):
		return "gzip"
	}
	return ""
}
