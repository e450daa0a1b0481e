package server_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"kaiwa/server"
	"kaiwa/server/cluster"
	"kaiwa/server/cluster/clustertest"
	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// TestMain stops the JetStream cluster that the cluster-mode tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.StopShared()
	os.Exit(code)
}

// clusterSuite are behaviour tests of this package that also run in cluster mode
// (TestClusterMode), unchanged: one suite, two engines, so that the two cannot drift.
var clusterSuite = []struct {
	name string
	test func(*testing.T)
}{
	{"WebSocketHandshake", TestWebSocketHandshake},
	{"WebSocketExpiryAndRevocation", TestWebSocketExpiryAndRevocation},
	{"WebSocketChat", TestWebSocketChat},
	{"ReplayWhileSending", TestReplayWhileSending},
	{"WSPrivateRoomIndistinguishable", TestWSPrivateRoomIndistinguishable},
	{"WSSendJoinsPublicRoom", TestWSSendJoinsPublicRoom},
	{"WSReadMarkers", TestWSReadMarkers},
	{"WSEditsAndDeletions", TestWSEditsAndDeletions},
	{"WSMentionsLiveAndReplayed", TestWSMentionsLiveAndReplayed},
	// Not TestWSRoomChanges: a send by a removed member whose node keeps no other socket in
	// the room is answered not_joined (the room left that node's memory) where the single
	// process, whose room alice holds, answers invalid_room.
	// Nor TestAdminDeleteRoom: the deletion reaches a socket on another node a moment after
	// the HTTP answer, so a send racing it is refused by the log (invalid_room) rather than
	// by the socket (not_joined); nothing is stored either way. Every node's Observer hearing
	// the deletion is tested in server/cluster.
}

// TestClusterMode runs clusterSuite with three Kaiwa nodes per test on one JetStream cluster
// that the whole package shares, each test in a namespace of its own.
func TestClusterMode(t *testing.T) {
	t.Parallel()
	for _, tc := range clusterSuite {
		t.Run(tc.name, tc.test) // most call t.Parallel themselves
	}
}

// inClusterMode reports whether t is a test of clusterSuite run by TestClusterMode.
func inClusterMode(t *testing.T) bool { return strings.HasPrefix(t.Name(), "TestClusterMode/") }

func newClusterTestServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	servers := clustertest.Fresh(t, cfg)
	ts := &testServer{Server: servers[0].Server, st: clusterStore{servers[0].Engine}, srv: servers[0].Kaiwa}
	for _, s := range servers {
		ts.nodes = append(ts.nodes, s.URL)
	}
	return ts
}

// clusterStore is the engine of a node whose reads first wait until the node has applied
// everything stored: a test checks there what it did through a socket on another node.
type clusterStore struct{ *cluster.Engine }

func (s clusterStore) caughtUp() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Barrier(ctx)
}

func (s clusterStore) Page(room string, before, after *uint64, limit int) ([]proto.Message, bool, error) {
	s.caughtUp()
	return s.Engine.Page(room, before, after, limit)
}

func (s clusterStore) Room(name string) (proto.Room, error) {
	s.caughtUp()
	return s.Engine.Room(name)
}

func (s clusterStore) RoomFor(userID, room string) (proto.Room, error) {
	s.caughtUp()
	return s.Engine.RoomFor(userID, room)
}

func (s clusterStore) UserByName(name string) (store.User, error) {
	s.caughtUp()
	return s.Engine.UserByName(name)
}
