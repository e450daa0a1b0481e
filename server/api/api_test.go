package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"kaiwa/server"
	"kaiwa/server/store"
	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

func TestResponseHeaders(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	tb, cookie := signup(t, ts.URL, "alice")
	tests := []struct {
		name   string
		req    request
		status int
	}{
		{"me", request{method: "GET", path: "/api/me", token: tb.AccessToken}, http.StatusOK},
		{"rooms", request{method: "GET", path: "/api/rooms", token: tb.AccessToken}, http.StatusOK},
		{"messages", request{method: "GET", path: "/api/rooms/general/messages", token: tb.AccessToken}, http.StatusOK},
		{"refresh", request{method: "POST", path: "/api/auth/refresh", cookie: cookie}, http.StatusOK},
		{"unauthorized", request{method: "GET", path: "/api/rooms"}, http.StatusUnauthorized},
		{"bad request", request{method: "POST", path: "/api/auth/login", body: "{"}, http.StatusBadRequest},
		{"unknown path", request{method: "GET", path: "/api/x"}, http.StatusNotFound},
		{"unknown nested path", request{method: "POST", path: "/api/rooms/general/bogus"}, http.StatusNotFound},
		{"wrong method on me", request{method: "POST", path: "/api/me"}, http.StatusMethodNotAllowed},
		{"wrong method on login", request{method: "GET", path: "/api/auth/login"}, http.StatusMethodNotAllowed},
		{"wrong method on rooms", request{method: "DELETE", path: "/api/rooms", token: tb.AccessToken}, http.StatusMethodNotAllowed},
		{"wrong method on messages", request{method: "POST", path: "/api/rooms/general/messages", token: tb.AccessToken}, http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, ts.URL, tc.req)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d (body %s)", resp.StatusCode, tc.status, resp.body)
			}
			switch tc.status {
			case http.StatusNotFound:
				wantError(t, resp, tc.status, proto.CodeNotFound)
			case http.StatusMethodNotAllowed:
				wantError(t, resp, tc.status, proto.CodeMethodNotAllowed)
				if allow := resp.Header.Get("Allow"); allow == "" || strings.Contains(allow, tc.req.method) {
					t.Errorf("Allow %q: want the path's methods, without %s", allow, tc.req.method)
				}
			default:
				wantAPIHeaders(t, resp)
			}
		})
	}
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	tb, _ := signup(t, ts.URL, "alice")
	big := `{"username":"` + strings.Repeat("a", 70<<10) + `","password":"correct horse"}`
	bodies := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"syntax error", `{"username":`, http.StatusBadRequest, proto.CodeBadRequest},
		{"not JSON", `username=alice`, http.StatusBadRequest, proto.CodeBadRequest},
		{"wrong type", `{"username":1,"password":2,"name":3}`, http.StatusBadRequest, proto.CodeBadRequest},
		{"array", `[]`, http.StatusBadRequest, proto.CodeBadRequest},
		{"trailing garbage", `{"username":"alice","password":"correct horse"} x`, http.StatusBadRequest, proto.CodeBadRequest},
		{"two values", `{"name":"a"}{"name":"b"}`, http.StatusBadRequest, proto.CodeBadRequest},
		{"empty", ``, http.StatusBadRequest, proto.CodeBadRequest},
		{"70 KiB", big, http.StatusRequestEntityTooLarge, proto.CodePayloadTooLarge},
		{"70 KiB, not JSON", strings.Repeat("x", 70<<10), http.StatusRequestEntityTooLarge, proto.CodePayloadTooLarge},
	}
	paths := []struct {
		path  string
		token string
	}{
		{"/api/auth/register", ""},
		{"/api/auth/login", ""},
		{"/api/rooms", tb.AccessToken},
	}
	for _, b := range bodies {
		for _, p := range paths {
			for _, chunked := range []bool{false, true} {
				name := b.name + " to " + p.path
				if chunked {
					name += ", chunked"
				}
				t.Run(name, func(t *testing.T) {
					var body io.Reader = strings.NewReader(b.body)
					if chunked {
						// A reader of unknown length: the client sends it chunked, without
						// Content-Length.
						body = io.MultiReader(body)
					}
					req, err := http.NewRequest("POST", ts.URL+p.path, body)
					if err != nil {
						t.Fatal(err)
					}
					if p.token != "" {
						req.Header.Set("Authorization", "Bearer "+p.token)
					}
					if chunked && req.ContentLength != 0 {
						t.Fatalf("Content-Length %d: the body would not go chunked", req.ContentLength)
					}
					resp := send(t, req)
					wantError(t, resp, b.status, b.code)
				})
			}
		}
	}
}

func TestRooms(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	c, tb := register(t, ts.URL, "alice")
	ctx := context.Background()

	rooms, err := c.Rooms(ctx, tb.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].Name != "general" {
		t.Fatalf("rooms of a new database = %+v, want general", rooms)
	}

	create := func(name string) response {
		return do(t, ts.URL, request{method: "POST", path: "/api/rooms", token: tb.AccessToken, body: `{"name":"` + name + `"}`})
	}
	tests := []struct {
		name   string
		room   string
		status int
		code   string
	}{
		{"new room", "dev-talk", http.StatusCreated, ""},
		{"64 characters", strings.Repeat("r", 64), http.StatusCreated, ""},
		{"again", "dev-talk", http.StatusConflict, proto.CodeRoomExists},
		{"the default room", "general", http.StatusConflict, proto.CodeRoomExists},
		{"empty", "", http.StatusBadRequest, proto.CodeInvalidRoom},
		{"uppercase", "UPPER", http.StatusBadRequest, proto.CodeInvalidRoom},
		{"underscore", "a_b", http.StatusBadRequest, proto.CodeInvalidRoom},
		{"space", "a b", http.StatusBadRequest, proto.CodeInvalidRoom},
		{"65 characters", strings.Repeat("r", 65), http.StatusBadRequest, proto.CodeInvalidRoom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := create(tc.room)
			if tc.code != "" {
				wantError(t, resp, tc.status, tc.code)
				return
			}
			var rb proto.RoomBody
			decodeBody(t, resp, tc.status, &rb)
			if rb.Room.Name != tc.room || rb.Room.CreatedAt.IsZero() || rb.Room.LastSeq != 0 {
				t.Errorf("created %+v, want %q", rb.Room, tc.room)
			}
		})
	}
	t.Run("list", func(t *testing.T) {
		rooms, err := c.Rooms(ctx, tb.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for i, r := range rooms {
			names = append(names, r.Name)
			if i > 0 && (r.LastTS.After(rooms[i-1].LastTS) || r.LastTS.Equal(rooms[i-1].LastTS) && r.Name < rooms[i-1].Name) {
				t.Errorf("%s listed after %s: want newest last_ts first, then by name", r.Name, rooms[i-1].Name)
			}
		}
		slices.Sort(names)
		if got := strings.Join(names, " "); got != "dev-talk general "+strings.Repeat("r", 64) {
			t.Errorf("rooms %q, want dev-talk, general and the 64-character one", got)
		}
	})
	t.Run("messages of an unknown room", func(t *testing.T) {
		resp := do(t, ts.URL, request{method: "GET", path: "/api/rooms/nowhere/messages", token: tb.AccessToken})
		wantError(t, resp, http.StatusNotFound, proto.CodeNotFound)
	})
	t.Run("messages of a badly named room", func(t *testing.T) {
		resp := do(t, ts.URL, request{method: "GET", path: "/api/rooms/UPPER/messages", token: tb.AccessToken})
		wantError(t, resp, http.StatusBadRequest, proto.CodeInvalidRoom)
	})
	t.Run("without a token", func(t *testing.T) {
		resp := do(t, ts.URL, request{method: "POST", path: "/api/rooms", body: `{"name":"sneaky"}`})
		wantError(t, resp, http.StatusUnauthorized, proto.CodeUnauthorized)
	})
}

func TestHistoryPaging(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	tb, _ := signup(t, ts.URL, "alice")
	const total = 120
	for i := 1; i <= total; i++ {
		msg, dup, err := ts.st.Append(store.DefaultRoom, tb.User.ID, "alice", "c"+strconv.Itoa(i), "m"+strconv.Itoa(i))
		if err != nil || dup || msg.Seq != uint64(i) {
			t.Fatalf("Append %d = %+v, dup %t, %v", i, msg, dup, err)
		}
	}
	tests := []struct {
		query       string
		first, last uint64 // 0, 0: no messages
		more        bool
	}{
		{"", 71, 120, true},
		{"limit=200", 1, 120, false},
		{"limit=1", 120, 120, true},
		{"before=71", 21, 70, true},
		{"before=101&limit=10", 91, 100, true},
		{"before=51", 1, 50, false},
		{"before=52", 2, 51, true},
		{"before=1", 0, 0, false},
		{"before=1000", 71, 120, true},
		{"after=0", 1, 50, true},
		{"after=0&limit=200", 1, 120, false},
		{"after=50", 51, 100, true},
		{"after=70", 71, 120, false},
		{"after=69", 70, 119, true},
		{"after=120", 0, 0, false},
		{"after=18446744073709551615", 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			resp := do(t, ts.URL, request{method: "GET", path: "/api/rooms/general/messages?" + tc.query, token: tb.AccessToken})
			var page proto.MessagePage
			decodeBody(t, resp, http.StatusOK, &page)
			if page.HasMore != tc.more {
				t.Errorf("has_more %t, want %t", page.HasMore, tc.more)
			}
			if page.Messages == nil {
				t.Errorf("messages is null, want a list: %s", resp.body)
			}
			if bytes.Contains(resp.body, []byte(`"type"`)) {
				t.Errorf("history messages carry a type: %.200s", resp.body)
			}
			var want, got []uint64
			for s := tc.first; tc.first != 0 && s <= tc.last; s++ {
				want = append(want, s)
			}
			for _, m := range page.Messages {
				got = append(got, m.Seq)
				if m.Text != "m"+strconv.FormatUint(m.Seq, 10) || m.From != "alice" || m.Room != "general" || m.TS.IsZero() {
					t.Errorf("message %+v", m)
				}
			}
			if len(got) != len(want) || (len(got) > 0 && (got[0] != want[0] || got[len(got)-1] != want[len(want)-1])) {
				t.Errorf("seqs %v, want %d..%d", got, tc.first, tc.last)
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Fatalf("seqs not ascending without gaps: %v", got)
				}
			}
		})
	}
	for _, query := range []string{"before=10&after=5", "limit=0", "limit=201", "limit=abc", "limit=-1", "before=abc", "after=-1", "before=1.5"} {
		t.Run(query, func(t *testing.T) {
			resp := do(t, ts.URL, request{method: "GET", path: "/api/rooms/general/messages?" + query, token: tb.AccessToken})
			wantError(t, resp, http.StatusBadRequest, proto.CodeBadRequest)
		})
	}
	t.Run("through the client", func(t *testing.T) {
		zero := uint64(0)
		page, err := client.NewAPI(ts.URL, nil).Messages(context.Background(), tb.AccessToken, "general", client.PageQuery{After: &zero, Limit: 10})
		if err != nil || len(page.Messages) != 10 || page.Messages[0].Seq != 1 || !page.HasMore {
			t.Errorf("Messages(after 0, limit 10) = %d messages from %v, has_more %t, %v", len(page.Messages), page.Messages, page.HasMore, err)
		}
	})
}

func TestAdminBackup(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	ctx := context.Background()
	c, user := register(t, ts.URL, "bob")
	_, root := register(t, ts.URL, "root")
	if _, err := ts.st.UpdateUser(root.User.ID, func(u *store.User) { u.Admin = true }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.st.Append("general", user.User.ID, "bob", "c1", "hello"); err != nil {
		t.Fatal(err)
	}

	t.Run("not an admin", func(t *testing.T) {
		resp := do(t, ts.URL, request{method: "GET", path: "/api/admin/backup", token: user.AccessToken})
		wantError(t, resp, http.StatusForbidden, proto.CodeForbidden)
		_, err := c.Backup(ctx, user.AccessToken, io.Discard)
		if !client.IsCode(err, proto.CodeForbidden) {
			t.Errorf("client Backup as bob: %v, want forbidden", err)
		}
	})
	t.Run("without a token", func(t *testing.T) {
		wantError(t, do(t, ts.URL, request{method: "GET", path: "/api/admin/backup"}), http.StatusUnauthorized, proto.CodeUnauthorized)
	})
	t.Run("admin", func(t *testing.T) {
		resp := do(t, ts.URL, request{method: "GET", path: "/api/admin/backup", token: root.AccessToken})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, resp.body)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", got)
		}
		path := filepath.Join(t.TempDir(), "backup.db")
		if err := os.WriteFile(path, resp.body, 0o600); err != nil {
			t.Fatal(err)
		}
		copied, err := store.Open(path)
		if err != nil {
			t.Fatalf("open the backup: %v", err)
		}
		defer copied.Close()
		if err := copied.Check(); err != nil {
			t.Error(err)
		}
		for _, name := range []string{"bob", "root"} {
			if _, err := copied.UserByName(name); err != nil {
				t.Errorf("%s in the backup: %v", name, err)
			}
		}
		if msgs, _, err := copied.Page("general", nil, nil, 10); err != nil || len(msgs) != 1 || msgs[0].Text != "hello" {
			t.Errorf("general in the backup = %+v, %v", msgs, err)
		}
	})
}
