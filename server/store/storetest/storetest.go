// Package storetest opens Kaiwa databases for tests: a real bbolt file in the test's temporary
// directory, checked for consistency (bbolt's Tx.Check) and closed when the test ends.
package storetest

import (
	"path/filepath"
	"testing"

	"kaiwa/server/store"
)

// Open opens a new database in tb.TempDir().
func Open(tb testing.TB) *store.Store {
	tb.Helper()
	return OpenAt(tb, filepath.Join(tb.TempDir(), "kaiwa.db"))
}

// OpenAt opens the database at path; the test fails if it cannot, or if the file is not
// consistent when the test ends.
func OpenAt(tb testing.TB, path string) *store.Store {
	tb.Helper()
	st, err := store.Open(path)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() {
		if err := st.Check(); err != nil {
			tb.Errorf("database after the test: %v", err)
		}
		st.Close()
	})
	return st
}
