package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/auth"
	"kaiwa/server/cluster"
	"kaiwa/server/cluster/clustertest"
	"kaiwa/server/store"
	"kaiwa/server/store/storetest"
	"kaiwa/shared/proto"
)

// source is a single-process database with something of everything in it.
type source struct {
	st       *store.Store
	users    []store.User // ann (admin), bob, carl, dave
	rooms    []string     // every room, dm included
	password string
}

// newSource fills a real single-process database: users with real password hashes, a public
// room, a private room with members, a dm, 1 000 messages over them with mentions, edits and
// deletions, read markers, a session and two large certificates.
func newSource(t *testing.T) *source {
	t.Helper()
	st := storetest.OpenAt(t, filepath.Join(t.TempDir(), "single.db"))
	a, err := auth.New(st, auth.Config{HashConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	src := &source{st: st, password: "correct horse battery"}
	for i, name := range []string{"ann", "bob", "carl", "dave"} {
		u, err := a.CreateUser(context.Background(), name, src.password, i == 0)
		if err != nil {
			t.Fatal(err)
		}
		src.users = append(src.users, u)
	}
	ann, bob, carl := src.users[0], src.users[1], src.users[2]
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.NewRoom(ann.ID, "lobby", proto.RoomPublic))
	must(st.NewRoom(ann.ID, "secret", proto.RoomPrivate))
	must(st.AddMember(ann.ID, "secret", bob.ID))
	must(st.AddMember(ann.ID, "secret", carl.ID))
	dm, _, err := st.DM(ann.ID, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	src.rooms = []string{store.DefaultRoom, "lobby", "secret", dm.Name}
	const total = 1000
	var reqs []store.AppendRequest
	for i := range total {
		room := src.rooms[i%len(src.rooms)]
		sender := []store.User{ann, bob}[i%2]
		if room == "lobby" || room == store.DefaultRoom {
			sender = src.users[i%len(src.users)]
		}
		reqs = append(reqs, store.AppendRequest{Room: room, UserID: sender.ID, From: sender.Name, ClientID: fmt.Sprintf("c%d", i),
			Text: fmt.Sprintf("message %d for @%s", i, src.users[(i+1)%len(src.users)].Name)})
		if len(reqs) == 50 {
			must(st.AppendBatch(reqs))
			reqs = nil
		}
	}
	// In every room, its sender edits the first message and deletes the second.
	for _, room := range src.rooms {
		first := messages(t, st, room)[:2]
		for i, kind := range []string{proto.KindEdit, proto.KindDelete} {
			m := first[i]
			u, err := st.UserByName(m.From)
			if err != nil {
				t.Fatal(err)
			}
			res, err := st.AppendBatch([]store.AppendRequest{{Room: room, UserID: u.ID, From: u.Name,
				ClientID: "change-" + kind, Text: "changed", Kind: kind, Target: m.Seq}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("%s of %s/%d: %v, %v", kind, room, m.Seq, err, res[0].Err)
			}
		}
	}
	must(st.SetRead(bob.ID, "secret", 100))
	must(st.SetRead(carl.ID, store.DefaultRoom, 200))
	must(st.SetRead(bob.ID, dm.Name, 30))
	now := time.Now().UTC()
	if err := st.CreateSession(store.Session{ID: "sess-bob", UserID: bob.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Current: [][]byte{{1, 2, 3}}}); err != nil {
		t.Fatal(err)
	}
	// Two large values: the import needs more than one operation.
	for _, key := range []string{"acme-account", "acme-cert"} {
		if err := st.PutCert(key, bytes.Repeat([]byte(key), 300<<10/len(key))); err != nil {
			t.Fatal(err)
		}
	}
	var stored int
	for _, room := range src.rooms {
		stored += len(messages(t, st, room))
	}
	if stored < total {
		t.Fatalf("source holds %d messages, want at least %d", stored, total)
	}
	return src
}

// messages returns every message of room, as stored.
func messages(t *testing.T, st *store.Store, room string) []proto.Message {
	t.Helper()
	var all []proto.Message
	after := uint64(0)
	for {
		page, more, err := st.Page(room, nil, &after, 200)
		if err != nil {
			t.Fatalf("page %s after %d: %v", room, after, err)
		}
		all = append(all, page...)
		if !more || len(page) == 0 {
			return all
		}
		after = page[len(page)-1].Seq
	}
}

// content returns st's raw content, without the signing key when keyless.
func content(t *testing.T, st *store.Store, keyless bool) []store.Raw {
	t.Helper()
	return storetest.Dump(t, st, func(r store.Raw) bool {
		return !keyless || r.Bucket || len(r.Path) != 1 || string(r.Path[0]) != "meta" || string(r.Key) != "signing_key"
	})
}

// sameAs fails t unless got answers as src does: every room's messages, and every user's rooms
// with their read markers, unread and mention counts, and history; and with raw, the raw
// content too, without the signing key when keyless.
func (src *source) sameAs(t *testing.T, name string, got *store.Store, raw, keyless bool) {
	t.Helper()
	if want, have := content(t, src.st, keyless), content(t, got, keyless); raw && !reflect.DeepEqual(have, want) {
		t.Errorf("%s: raw content differs from the source's: %d entries, want %d", name, len(have), len(want))
	}
	for _, room := range src.rooms {
		if want, have := messages(t, src.st, room), messages(t, got, room); !reflect.DeepEqual(have, want) {
			t.Errorf("%s: room %s: %d messages, want %d, or they differ", name, room, len(have), len(want))
		}
	}
	for _, u := range src.users {
		want, err := src.st.RoomsFor(u.ID)
		if err != nil {
			t.Fatal(err)
		}
		have, err := got.RoomsFor(u.ID)
		if err != nil || !reflect.DeepEqual(have, want) {
			t.Errorf("%s: rooms of %s = %+v, %v; want %+v", name, u.Name, have, err, want)
		}
		for _, room := range want {
			w, _, werr := src.st.History(u.ID, room.Name, nil, nil, 200)
			h, _, herr := got.History(u.ID, room.Name, nil, nil, 200)
			if herr != nil || werr != nil || !reflect.DeepEqual(h, w) {
				t.Errorf("%s: history of %s for %s differs (%v, %v)", name, room.Name, u.Name, herr, werr)
			}
		}
	}
}

// TestImportIntoInitialisedCluster imports a single-process database into a three-node cluster
// whose first node has initialised it, and finds it whole on a node that was running and on
// one that starts afterwards; a user of the source signs in there with their password, and the
// cluster's backup opens as a single-process database with the same content. A second import
// is refused.
func TestImportIntoInitialisedCluster(t *testing.T) {
	t.Parallel()
	src := newSource(t)
	nodes := clustertest.Nodes(t, 3)
	dir := t.TempDir()
	a, err := clustertest.Open(nodes[0], filepath.Join(dir, "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	clusterKey := bytes.Clone(a.SigningKey())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	im, err := cluster.Import(ctx, nodes[1], src.st)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	t.Logf("imported %+v", im)
	if !im.KeptKey || im.First != 2 || im.Ops < 2 || im.Last != im.First+uint64(im.Ops)-1 {
		t.Errorf("import = %+v: want the init op kept, then at least two restore ops in a row", im)
	}

	b, err := clustertest.Open(nodes[2], filepath.Join(dir, "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := a.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]*cluster.Engine{"running node": a, "new node": b} {
		src.sameAs(t, name, e.Store, true, true)
		if !bytes.Equal(e.SigningKey(), clusterKey) {
			t.Errorf("%s: the signing key is not the cluster's", name)
		}
	}

	t.Run("a user of the source signs in on a node, which goes on numbering", func(t *testing.T) {
		srv, err := server.New(server.Config{}, b, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(func() { srv.Close(); ts.Close() })
		token := login(t, ts.URL, "ann", src.password)
		var rooms struct{ Rooms []proto.Room }
		getJSON(t, ts.URL+"/api/rooms", token, &rooms)
		want, _ := src.st.RoomsFor(src.users[0].ID)
		if len(rooms.Rooms) != len(want) {
			t.Fatalf("ann sees %d rooms on the cluster, %d on the source", len(rooms.Rooms), len(want))
		}
		for i, r := range rooms.Rooms {
			if r.Name != want[i].Name || r.LastSeq != want[i].LastSeq || r.Unread != want[i].Unread {
				t.Errorf("room %d on the cluster = %s last %d unread %d; source: %s last %d unread %d",
					i, r.Name, r.LastSeq, r.Unread, want[i].Name, want[i].LastSeq, want[i].Unread)
			}
		}

		// The backup (ann's sign-in added a session since) has the same rooms and messages.
		backup := filepath.Join(t.TempDir(), "backup.db")
		resp := get(t, ts.URL+"/api/admin/backup", token)
		f, err := os.Create(backup)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(f, resp.Body)
		resp.Body.Close()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		src.sameAs(t, "backup", storetest.OpenAt(t, backup), false, true)

		secret, err := src.st.Room("secret")
		if err != nil {
			t.Fatal(err)
		}
		msg, _, err := a.Append("secret", src.users[1].ID, "bob", "after-import", "on the cluster")
		if err != nil || msg.Seq != secret.LastSeq+1 {
			t.Errorf("first message in secret after the import: seq %d, %v; want %d", msg.Seq, err, secret.LastSeq+1)
		}
	})

	t.Run("a cluster that holds data refuses an import", func(t *testing.T) {
		before, err := nodes[0].LastSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cluster.Import(ctx, nodes[0], src.st)
		if !errors.Is(err, cluster.ErrNotEmpty) {
			t.Fatalf("second import: %v, want ErrNotEmpty", err)
		}
		if after, _ := nodes[0].LastSeq(ctx); after != before {
			t.Errorf("the refused import stored operations: last seq %d, was %d", after, before)
		}
	})
}

// TestImportIntoEmptyCluster imports into a cluster no node has opened yet: the source's
// signing key comes over too, and a node that opens afterwards holds an exact copy.
func TestImportIntoEmptyCluster(t *testing.T) {
	t.Parallel()
	src := newSource(t)
	nodes := clustertest.Nodes(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	im, err := cluster.Import(ctx, nodes[0], src.st)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if im.KeptKey || im.First != 1 || im.Ops < 2 {
		t.Errorf("import = %+v: want the source's key, from seq 1", im)
	}
	e, err := clustertest.Open(nodes[0], filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if e.Applied() != im.Last {
		t.Errorf("node applied up to %d, the import ended at %d: it proposed something of its own", e.Applied(), im.Last)
	}
	src.sameAs(t, "node", e.Store, true, false)
	if !bytes.Equal(e.SigningKey(), src.st.SigningKey()) {
		t.Error("the signing key in use is not the source's")
	}
}

func login(t *testing.T, base, name, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": name, "password": password})
	resp, err := http.Post(base+"/api/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tb proto.TokenBody
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&tb) != nil || tb.AccessToken == "" {
		t.Fatalf("sign-in as %s: %s", name, resp.Status)
	}
	return tb.AccessToken
}

func get(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %s %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp
}

func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	resp := get(t, url, token)
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
