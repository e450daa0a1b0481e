package app

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

func seqs(msgs []proto.Message) string {
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprint(m.Seq))
	}
	return strings.Join(out, ",")
}

func msgsOf(ns ...uint64) []proto.Message {
	var out []proto.Message
	for _, n := range ns {
		out = append(out, proto.Message{Seq: n, ID: fmt.Sprint("id", n)})
	}
	return out
}

func TestMergeMessages(t *testing.T) {
	tests := []struct {
		name string
		a, b []proto.Message
		want string
	}{
		{"nothing", nil, nil, ""},
		{"into nothing", nil, msgsOf(1, 2), "1,2"},
		{"append", msgsOf(1, 2), msgsOf(3), "1,2,3"},
		{"seen again", msgsOf(1, 2, 3), msgsOf(2), "1,2,3"},
		{"older page", msgsOf(51, 52), msgsOf(49, 50), "49,50,51,52"},
		{"overlap", msgsOf(1, 3, 5), msgsOf(2, 3, 4, 6), "1,2,3,4,5,6"},
		{"same list", msgsOf(1, 2), msgsOf(1, 2), "1,2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := seqs(tt.a)
			if got := seqs(mergeMessages(tt.a, tt.b)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if seqs(tt.a) != before {
				t.Errorf("the first list changed to %s", seqs(tt.a))
			}
		})
	}
}

// mapStorage is a goapp.BrowserStorage in a map, JSON-encoded as in the browser's storage.
type mapStorage map[string][]byte

func (m mapStorage) Set(k string, v any) error {
	b, err := json.Marshal(v)
	if err == nil {
		m[k] = b
	}
	return err
}

func (m mapStorage) Get(k string, v any) error {
	if b, ok := m[k]; ok {
		return json.Unmarshal(b, v)
	}
	return nil
}

func (m mapStorage) Del(k string)           { delete(m, k) }
func (m mapStorage) Len() int               { return len(m) }
func (m mapStorage) Clear()                 { clear(m) }
func (m mapStorage) Contains(k string) bool { _, ok := m[k]; return ok }
func (m mapStorage) ForEach(f func(k string)) {
	for k := range m {
		f(k)
	}
}

func TestLocalData(t *testing.T) {
	d := localData{s: mapStorage{}}
	d.claim("alice")

	var many []proto.Message
	for n := uint64(1); n <= keptMessages+30; n++ {
		many = append(many, proto.Message{Seq: n})
	}
	d.saveMessages("general", many)
	if got := d.messages("general"); len(got) != keptMessages || got[0].Seq != 31 || got[len(got)-1].Seq != keptMessages+30 {
		t.Errorf("kept %d messages from seq %s, want the newest %d", len(got), seqs(got[:1]), keptMessages)
	}

	d.setOutbox([]client.Pending{{Room: "general", ID: "a", Text: "one"}, {Room: "other", ID: "b", Text: "two", Failed: true, Code: proto.CodeInvalidRoom}})
	if got := d.outbox(); len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" || !got[1].Failed || got[1].Code != proto.CodeInvalidRoom {
		t.Errorf("outbox %v, want a then b, failed", got)
	}
	d.setOutbox([]client.Pending{{Room: "other", ID: "b", Text: "two", Failed: true}})
	if got := d.outbox(); len(got) != 1 || got[0].ID != "b" {
		t.Errorf("outbox after the ack of a: %v", got)
	}

	d.s.Set("unrelated", 1)
	d.claim("alice") // the same user keeps everything
	if len(d.outbox()) != 1 {
		t.Error("claiming again for the same user dropped the outbox")
	}
	d.claim("bob") // another user's data goes
	if len(d.outbox()) != 0 || len(d.messages("general")) != 0 {
		t.Error("bob sees alice's saved data")
	}
	if d.user() != "bob" {
		t.Errorf("the data belongs to %q, want bob", d.user())
	}
	d.clear()
	if d.user() != "" || !d.s.Contains("unrelated") {
		t.Error("clear must remove Kaiwa's keys and only them")
	}
}

// TestRoomMarkup checks SPEC §5's markup of a room on a rendered view.
func TestRoomMarkup(t *testing.T) {
	const evil = `<img src=x onerror="alert(1)">`
	v := &roomView{
		Room:    "general",
		me:      "alice",
		state:   client.StateOffline,
		msgs:    []proto.Message{{Seq: 7, ID: "m7", From: "bob", Text: evil}, {Seq: 8, ID: "m8", From: "alice", Text: "hi"}},
		pending: []client.Pending{{Room: "general", ID: "p1", Text: "later"}},
		online:  []string{"alice", "bob"},
	}
	html := goapp.HTMLString(v)
	for _, want := range []string{
		`role="log"`,
		`data-seq="7"`, `data-id="m7"`, `data-seq="8"`, `data-id="m8"`,
		`data-pending`, `data-id="p1"`,
		`data-state="offline"`,
		`<textarea`, `name="message"`,
		`type="submit"`,
		`Load older messages`, // seq 7 is not the first
	} {
		if !strings.Contains(html, want) {
			t.Errorf("room lacks %s:\n%s", want, html)
		}
	}
	if n := strings.Count(html, `role="status"`); n != 1 {
		t.Errorf("%d elements with role=status, want 1", n)
	}
	if !regexp.MustCompile(`(?s)<form[^>]*class="composer".*name="message".*</form>`).MatchString(html) {
		t.Error("the message field is not inside the composer form")
	}
	if regexp.MustCompile(`(^|[^"])<img src=x`).MatchString(html) || !strings.Contains(html, "&lt;img") {
		t.Errorf("user text became markup:\n%s", html)
	}
	pendingSeq := regexp.MustCompile(`<li[^>]*data-pending[^>]*data-seq|<li[^>]*data-seq[^>]*data-pending`)
	if pendingSeq.MatchString(html) {
		t.Error("a pending message carries a seq")
	}
}
