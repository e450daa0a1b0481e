package main

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"kaiwa/server/auth"
	"kaiwa/server/cluster"
	"kaiwa/server/store"
)

// TestImportCommand runs kaiwa import against a real NATS JetStream server: the database
// arrives whole (a node's cache then signs its user in with the same password and answers the
// same history), a second import is refused with a non-zero exit, and so are a missing source
// and a missing -nats.
func TestImportCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(dir, "nats"), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	url := srv.ClientURL()

	db := filepath.Join(dir, "single.db")
	if code, _, stderr := runKaiwa(t, "correct horse\n", "user", "add", "-db", db, "root", "-admin"); code != 0 {
		t.Fatalf("user add: exit %d: %s", code, stderr)
	}
	st, err := store.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	root, err := st.UserByName("root")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, _, err := st.Append(store.DefaultRoom, root.ID, "root", strings.Repeat("x", i+1), "hello"); err != nil {
			t.Fatal(err)
		}
	}
	want, _, err := st.History(root.ID, store.DefaultRoom, nil, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		output string // in stdout when code is 0, else in stderr
	}{
		{"no -nats", []string{"import", "-db", db}, 2, "needs -nats"},
		{"no such database", []string{"import", "-nats", url, "-db", filepath.Join(dir, "none.db")}, 1, "no such database"},
		{"import", []string{"import", "-nats", url, "-db", db}, 0, "imported " + db},
		{"import again", []string{"import", "-nats", url, "-db", db}, 1, "already holds data"},
	} {
		code, stdout, stderr := runKaiwa(t, "", tc.args...)
		out := stdout
		if code != 0 {
			out = stderr
		}
		if code != tc.code || !strings.Contains(out, tc.output) {
			t.Errorf("%s: exit %d, output %q; want exit %d and %q", tc.name, code, out, tc.code, tc.output)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node, err := cluster.Start(ctx, cluster.Config{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	e, err := cluster.Open(ctx, node, filepath.Join(dir, "cache.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got, _, err := e.History(root.ID, store.DefaultRoom, nil, nil, 50)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("history on the cluster: %d messages, %v; want the source's %d", len(got), err, len(want))
	}
	a, err := auth.New(e, auth.Config{HashConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Login(ctx, "root", "correct horse"); err != nil {
		t.Errorf("root signs in on the cluster: %v", err)
	}
}
