package server_test

import (
	"slices"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/hub"
	"kaiwa/shared/proto"
)

// awaitOnline waits for a presence frame of the room listing exactly want.
func (s *socket) awaitOnline(room string, want ...string) {
	s.t.Helper()
	timeout := time.After(convWait)
	var last []string
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				s.t.Fatalf("socket closed waiting for %s online %q: %v", room, want, <-s.closed)
			}
			if f.Type != proto.TypePresence || f.Room != room {
				continue
			}
			if last = f.Online; slices.Equal(f.Online, want) {
				return
			}
		case <-timeout:
			s.t.Fatalf("no presence of %s listing %q within %v; the last listed %q", room, want, convWait, last)
		}
	}
}

// TestPresenceAcrossNodes runs two servers as two nodes whose hubs share a LocalPresence: a
// member sees the users online on either node; the users of a node that stops refreshing its
// set (a node that died) go offline; a user who leaves one node goes offline on the other.
func TestPresenceAcrossNodes(t *testing.T) {
	t.Parallel()
	bus := hub.NewLocalPresence()
	// Longer than the presence frames' coalescing (a second): a set lives three periods.
	const refresh = time.Second
	a := newTestServer(t, server.Config{Presence: bus.Node("a"), PresenceRefresh: refresh})
	b := newTestServer(t, server.Config{Presence: bus.Node("b"), PresenceRefresh: refresh})
	_, aliceToken := a.user(t, "alice")
	_, bobToken := b.user(t, "bob")
	alice := a.connect(t, aliceToken)
	alice.joinRoom("general")
	bob := b.connect(t, bobToken)
	bob.joinRoom("general")
	alice.awaitOnline("general", "alice", "bob")
	bob.awaitOnline("general", "alice", "bob")

	// A third node publishes its set once, and never again.
	bus.Node("c").Publish("general", []string{"carol"})
	for _, s := range []*socket{alice, bob} {
		s.awaitOnline("general", "alice", "bob", "carol")
	}
	for _, s := range []*socket{alice, bob} {
		s.awaitOnline("general", "alice", "bob")
	}

	// The sets of live nodes are refreshed: for twice a set's life, bob keeps seeing alice.
	window := time.After(2 * 3 * refresh)
	for done := false; !done; {
		select {
		case f, ok := <-bob.frames:
			if !ok {
				t.Fatalf("bob's socket closed: %v", <-bob.closed)
			}
			if f.Type == proto.TypePresence && !slices.Contains(f.Online, "alice") {
				t.Fatalf("alice went offline for bob while her node was alive: %q", f.Online)
			}
		case <-window:
			done = true
		}
	}

	// Leaving on one node is offline on the other.
	alice.write(proto.Leave{Type: proto.TypeLeave, Room: "general"})
	bob.awaitOnline("general", "bob")
}
