package hub_test

import (
	"fmt"
	"slices"
	"testing"

	"kaiwa/server/hub"
)

// TestLocalPresence checks LocalPresence's side of the Presence contract: a node never hears
// its own sets, hears the others' in the order published, and gets the sets already held when
// it subscribes; an empty set is forgotten.
func TestLocalPresence(t *testing.T) {
	bus := hub.NewLocalPresence()
	a, b, c := bus.Node("a"), bus.Node("b"), bus.Node("c")
	heard := map[string][]string{}
	listen := func(who string, p hub.Presence) func() {
		return p.Subscribe("general", func(node string, online []string) {
			heard[who] = append(heard[who], fmt.Sprintf("%s%v", node, online))
		})
	}
	c.Publish("general", []string{"carol"})
	c.Publish("other", []string{"carl"})
	stopA := listen("a", a)
	listen("b", b)
	a.Publish("general", []string{"alice"})
	a.Publish("general", []string{"alice", "ann"})
	b.Publish("general", []string{"bob"})
	c.Publish("general", nil)
	stopA()
	b.Publish("general", nil)
	listen("late", bus.Node("d"))

	for _, tc := range []struct {
		who  string
		want []string
	}{
		{"a", []string{"c[carol]", "b[bob]", "c[]"}},
		{"b", []string{"c[carol]", "a[alice]", "a[alice ann]", "c[]"}},
		{"late", []string{"a[alice ann]"}},
	} {
		if got := heard[tc.who]; !slices.Equal(got, tc.want) {
			t.Errorf("%s heard %q, want %q", tc.who, got, tc.want)
		}
	}
}
