package app

import (
	"strings"
	"testing"
	"time"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/proto"
)

func TestRichText(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // in the HTML, in order
		not        []string
	}{
		{"plain", "hello", []string{"hello"}, []string{"<a", "<mark"}},
		// go-app writes an element's attributes in no fixed order: each is looked for alone.
		{"link", "see https://example.com/a?b=1.", []string{`<a `, `>https://example.com/a?b=1</a>`, "."}, nil},
		{"link's href", "see https://example.com/a?b=1.", []string{`href="https://example.com/a?b=1"`}, nil},
		{"link's target", "see https://example.com/a?b=1.", []string{`target="_blank"`}, nil},
		{"link's rel", "see https://example.com/a?b=1.", []string{`rel="noopener noreferrer nofollow"`}, nil},
		{"link in parentheses", "(http://example.com/x)", []string{`href="http://example.com/x"`, ">http://example.com/x</a>", ")"}, nil},
		{"parenthesis of the link", "https://en.wikipedia.org/wiki/Go_(game)", []string{`href="https://en.wikipedia.org/wiki/Go_(game)"`}, nil},
		{"no other scheme", "javascript:alert(1) ftp://x.org", nil, []string{"<a"}},
		{"my mention", "hi @alice.", []string{`<mark class="mention">@alice</mark>`, "."}, nil},
		{"another's mention", "hi @bob", []string{"@bob"}, []string{"<mark"}},
		{"longer name", "hi @alicex", nil, []string{"<mark"}},
		{"an address", "mail bob@alice", nil, []string{"<mark"}},
		{"markup stays text", `<b>@alice</b> https://x.org/"><img`, []string{"&lt;b&gt;", `href="https://x.org/"`}, []string{"<b>", "<img"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			html := goapp.HTMLString(goapp.P().Body(richText(tt.text, "alice")...))
			rest := html
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%q not found (in order) in %s", w, html)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tt.not {
				if strings.Contains(html, n) {
					t.Errorf("%q in %s", n, html)
				}
			}
		})
	}
}

func TestFoldEdits(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	msgs := []proto.Message{
		{Seq: 1, From: "alice", Text: "one", TS: ts},
		{Seq: 2, From: "bob", Text: "two", TS: ts},
		{Seq: 3, From: "alice", Text: "one, better", Kind: proto.KindEdit, Target: 1, TS: ts.Add(time.Minute)},
		{Seq: 4, From: "bob", Kind: proto.KindDelete, Target: 2, TS: ts},
		{Seq: 5, From: "bob", Text: "too late", Kind: proto.KindEdit, Target: 2, TS: ts},
		{Seq: 6, From: "alice", Kind: proto.KindEdit, Target: 0, Text: "of a message not shown"},
	}
	got := foldEdits(msgs)
	if len(got) != 2 {
		t.Fatalf("%d messages shown, want 2: %+v", len(got), got)
	}
	if got[0].Text != "one, better" || got[0].EditedAt == nil || !got[0].EditedAt.Equal(ts.Add(time.Minute)) {
		t.Errorf("the edited message is %+v", got[0])
	}
	if !got[1].Deleted || got[1].Text != "" {
		t.Errorf("the deleted message is %+v", got[1])
	}
	if msgs[0].Text != "one" {
		t.Error("foldEdits changed its input")
	}
}

// TestLogItems lays out a log: a separator before each day's first message, the "new
// messages" divider above the first message past the marker, and a message grouped with the one
// before it only when the same author wrote it within groupWithin, on the same day, and no
// divider stands between them.
func TestLogItems(t *testing.T) {
	day := time.Date(2026, 3, 4, 10, 0, 0, 0, time.Local)
	v := &roomView{me: "alice", divided: true, divider: 4, msgs: []proto.Message{
		{Seq: 1, From: "alice", Text: "a", TS: day},
		{Seq: 2, From: "alice", Text: "b", TS: day.Add(4 * time.Minute)},  // grouped
		{Seq: 3, From: "alice", Text: "c", TS: day.Add(10 * time.Minute)}, // 6 min later: not grouped
		{Seq: 4, From: "bob", Text: "d", TS: day.Add(11 * time.Minute)},   // another author
		{Seq: 5, From: "bob", Text: "e", TS: day.Add(12 * time.Minute)},   // past the marker: divider, not grouped
		{Seq: 6, From: "bob", Text: "f", TS: day.Add(13 * time.Minute)},   // grouped
		{Seq: 7, From: "bob", Text: "g", TS: day.AddDate(0, 0, 1)},        // a new day: not grouped
	}}
	var got []string
	for _, it := range v.logItems() {
		html := goapp.HTMLString(it)
		switch {
		case strings.Contains(html, `data-day=`):
			got = append(got, "day")
		case strings.Contains(html, `data-divider=`):
			got = append(got, "divider")
		case strings.Contains(html, "grouped"):
			got = append(got, "grouped")
		default:
			got = append(got, "msg")
		}
	}
	want := []string{"day", "msg", "grouped", "msg", "msg", "divider", "msg", "grouped", "day", "msg"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("log items\n got %q\nwant %q", got, want)
	}
}
