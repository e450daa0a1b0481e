package app

import (
	"strings"
	"testing"

	"kaiwa/shared/proto"
)

// The snapshot is the signed-in room list as static HTML: the user's rooms only, every text
// escaped, and none of the attributes automation reads from the live app.
func TestSnapshotHTML(t *testing.T) {
	rooms := []proto.Room{
		{Name: "general", Kind: proto.RoomPublic, Member: true, Unread: 3, Mentions: 1},
		{Name: "lobby", Kind: proto.RoomPublic}, // not a member: not in the list
		{Name: "secret", Kind: proto.RoomPrivate, Member: true},
		{Name: "dm-1", Kind: proto.RoomDM, Member: true, Members: []string{"<b>me</b>", `bob"&<i>`}},
	}
	got := snapshotHTML("<b>me</b>", rooms)
	for _, want := range []string{
		`<div class="kaiwa snapshot" inert aria-busy="true" data-snapshot="&lt;b&gt;me&lt;/b&gt;">`,
		`<span class="topbar-user">&lt;b&gt;me&lt;/b&gt;</span>`,
		`<li><a href="/rooms/general" class="unread"><span class="room-name">#general</span>` +
			`<span class="badge mention">@1</span><span class="badge">3</span></a></li>`,
		`<span class="room-name">#secret</span><span class="meta">private</span>`,
		`<span class="room-name dm">bob&#34;&amp;&lt;i&gt;</span>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("snapshot lacks %s:\n%s", want, got)
		}
	}
	for _, never := range []string{"lobby", "<b>", "<i>", "data-room", "data-view", "data-unread", "data-user", "<script", "<form", "<input"} {
		if strings.Contains(got, never) {
			t.Errorf("snapshot holds %q:\n%s", never, got)
		}
	}
	if got := snapshotHTML("me", rooms[1:2]); got != "" {
		t.Errorf("no room of the user's, snapshot %q, want none", got)
	}
}
