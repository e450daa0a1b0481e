package cluster_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"strings"
	"testing"
)

// readOnly are the exported methods of *store.Store that change nothing in the database, or
// that the engine keeps local on purpose; the Engine may inherit them. Every other exported
// method of *store.Store mutates, and would write the local cache alone, behind the log's
// back: the Engine must override it with an operation.
var readOnly = map[string]bool{
	// Reads.
	"Cert": true, "CanRead": true, "RoomFor": true, "RoomsFor": true, "Members": true,
	"Memberships": true, "Rooms": true, "Room": true, "Page": true, "History": true,
	"After": true, "Session": true, "UserByName": true, "UserByID": true, "UsersByPrefix": true,
	"SigningKey": true, "AppliedSeq": true, "Dump": true,
	// The file itself.
	"Close": true, "Path": true, "Check": true, "QuickCheck": true, "Backup": true,
	// What the applier uses: the view of a log position, the observer it calls, and the raw
	// writes of an import (a restore operation).
	"At": true, "SetObserver": true, "Restore": true,
}

// TestEngineOverridesEveryMutation fails when *store.Store gains an exported method that is
// neither listed read-only above nor defined on *cluster.Engine.
func TestEngineOverridesEveryMutation(t *testing.T) {
	storeMethods := methods(t, "../store", "Store")
	engineMethods := methods(t, ".", "Engine")
	for name := range storeMethods {
		if !readOnly[name] && !engineMethods[name] {
			t.Errorf("store.Store.%s is neither read-only nor overridden by cluster.Engine: a mutation must be an operation in the log", name)
		}
	}
	for name := range readOnly {
		if !storeMethods[name] {
			t.Errorf("readOnly lists %s, which *store.Store no longer has", name)
		}
	}
	if len(storeMethods) < 30 {
		t.Fatalf("found only %d methods of *store.Store: the parse is wrong", len(storeMethods))
	}
}

// methods returns the exported methods declared on *typ (or typ) in the non-test files of dir.
func methods(t *testing.T, dir, typ string) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Recv == nil || !fn.Name.IsExported() {
					continue
				}
				rt := fn.Recv.List[0].Type
				if star, ok := rt.(*ast.StarExpr); ok {
					rt = star.X
				}
				if id, ok := rt.(*ast.Ident); ok && id.Name == typ {
					found[fn.Name.Name] = true
				}
			}
		}
	}
	return found
}
