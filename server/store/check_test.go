package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kaiwa/server/store"
)

// pageSize is bbolt's page size on the platforms Kaiwa runs on.
const pageSize = 4096

// filledDatabase writes a database with some history, closes it and returns its path and its
// number of pages.
func filledDatabase(t *testing.T, messages int) (string, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kaiwa.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser("alice", "hash", true); err != nil {
		t.Fatal(err)
	}
	reqs := make([]store.AppendRequest, messages)
	for i := range reqs {
		reqs[i] = store.AppendRequest{Room: store.DefaultRoom, UserID: "u1", From: "alice", ClientID: fmt.Sprint("c", i), Text: strings.Repeat("m", 60)}
	}
	if _, err := st.AppendBatch(reqs); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, int(fi.Size() / pageSize)
}

// overwritePage copies src and fills one page of the copy with b.
func overwritePage(t *testing.T, src string, page int, b byte) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for i := page * pageSize; i < (page+1)*pageSize; i++ {
		data[i] = b
	}
	dst := filepath.Join(t.TempDir(), "damaged.db")
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestCheckFindsDamage overwrites pages of a real database and expects Open or Check to say the
// file is damaged: an error wrapping ErrCorrupt, never a crash and never a clean bill.
func TestCheckFindsDamage(t *testing.T) {
	src, pages := filledDatabase(t, 3000)
	if pages < 20 {
		t.Fatalf("only %d pages: the test needs history spread over many", pages)
	}
	st, err := store.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Check(); err != nil {
		t.Fatalf("Check of the intact file: %v", err)
	}
	if err := st.QuickCheck(); err != nil {
		t.Fatalf("QuickCheck of the intact file: %v", err)
	}
	st.Close()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// Pages in use: the first, a middle and the last message, the user, the message ids.
	targets := map[string]int{}
	for _, s := range []string{`"id":"c0"`, `"id":"c1500"`, `"id":"c2999"`, `"name":"alice"`, "u1\x00c1500"} {
		at := bytes.Index(data, []byte(s))
		if at < 0 {
			t.Fatalf("%q is not in the file", s)
		}
		targets["page holding "+s] = at / pageSize
	}

	for name, page := range targets {
		for _, fill := range []byte{0x00, 0xff, 0x5a} {
			t.Run(fmt.Sprintf("%s (%d of %d) filled with %#x", name, page, pages, fill), func(t *testing.T) {
				path := overwritePage(t, src, page, fill)
				st, err := store.Open(path)
				if err != nil {
					if !errors.Is(err, store.ErrCorrupt) {
						t.Fatalf("Open: %v, want ErrCorrupt", err)
					}
					return
				}
				defer st.Close()
				if err := st.Check(); !errors.Is(err, store.ErrCorrupt) {
					t.Fatalf("Check: %v, want ErrCorrupt", err)
				}
			})
		}
	}
	t.Run("both meta pages", func(t *testing.T) {
		path := overwritePage(t, overwritePage(t, src, 0, 0x5a), 1, 0x5a)
		if st, err := store.Open(path); !errors.Is(err, store.ErrCorrupt) {
			if err == nil {
				st.Close()
			}
			t.Fatalf("Open: %v, want ErrCorrupt", err)
		}
	})
}

func TestQuickCheckFindsDamageAtTheTail(t *testing.T) {
	src, _ := filledDatabase(t, 3000)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// The page that holds the newest message, which QuickCheck reads.
	at := bytes.Index(data, []byte(`"id":"c2999"`))
	if at < 0 {
		t.Fatal("the newest message is not in the file")
	}
	path := overwritePage(t, src, at/pageSize, 0x00)
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.QuickCheck(); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("QuickCheck: %v, want ErrCorrupt", err)
	}
}
