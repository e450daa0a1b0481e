package app

import (
	"slices"
	"strings"

	goapp "github.com/maxence-charriere/go-app/v10/pkg/app"

	"kaiwa/shared/client"
	"kaiwa/shared/proto"
)

// What the app keeps in the browser's local storage, all under keyPrefix so that signing out
// can remove it. None of it is a secret: the access token stays in memory and the refresh
// token in an HttpOnly cookie.
const (
	keyPrefix     = "kaiwa."
	keyUser       = keyPrefix + "user"   // the name of the user the data belongs to
	keyOutbox     = keyPrefix + "outbox" // []client.Pending, oldest first, every room, failed too
	keyRoomPrefix = keyPrefix + "room."  // + room name: the room's newest messages
	// keyHinted is set once the server's session hint cookie has been seen in this browser:
	// from then on its absence means signed out (see Tab.start).
	keyHinted    = keyPrefix + "hinted"
	keptMessages = 200 // messages kept per room
)

// localData reads and writes Kaiwa's data in a browser storage. Every method runs on the UI
// goroutine; each tab reads before it writes, so two tabs of one user add to one outbox.
type localData struct {
	s goapp.BrowserStorage
}

// messages returns a room's saved messages, ascending by seq.
func (d localData) messages(room string) []proto.Message {
	var msgs []proto.Message
	if d.s.Get(keyRoomPrefix+room, &msgs) != nil {
		return nil
	}
	return msgs
}

// rooms lists the rooms with saved messages, by name.
func (d localData) rooms() []string {
	var names []string
	d.s.ForEach(func(k string) {
		if name, ok := strings.CutPrefix(k, keyRoomPrefix); ok {
			names = append(names, name)
		}
	})
	slices.Sort(names)
	return names
}

// saveMessages keeps the newest keptMessages of msgs for the room.
func (d localData) saveMessages(room string, msgs []proto.Message) {
	d.s.Set(keyRoomPrefix+room, msgs[max(len(msgs)-keptMessages, 0):])
}

// outbox returns the sends of every room still waiting for their ack.
func (d localData) outbox() []client.Pending {
	var list []client.Pending
	if d.s.Get(keyOutbox, &list) != nil {
		return nil
	}
	return list
}

// setOutbox keeps the session's outbox (see client.EventOutbox), failed sends included.
func (d localData) setOutbox(list []client.Pending) {
	if len(list) == 0 {
		d.s.Del(keyOutbox)
		return
	}
	d.s.Set(keyOutbox, list)
}

// user returns the name of the user the saved data belongs to, or "".
func (d localData) user() string {
	var name string
	d.s.Get(keyUser, &name)
	return name
}

// hinted reports whether this browser has seen the session hint cookie since its user signed in.
func (d localData) hinted() bool {
	var seen bool
	d.s.Get(keyHinted, &seen)
	return seen
}

// setHinted records that the session hint cookie was seen.
func (d localData) setHinted() {
	if !d.hinted() {
		d.s.Set(keyHinted, true)
	}
}

// claim makes the saved data the given user's: data of another user is removed first.
func (d localData) claim(name string) {
	if prev := d.user(); prev != name {
		if prev != "" {
			d.clear()
		}
		d.s.Set(keyUser, name)
	}
}

// clear removes everything Kaiwa saved, as signing out does.
func (d localData) clear() {
	var keys []string
	d.s.ForEach(func(k string) {
		if strings.HasPrefix(k, keyPrefix) {
			keys = append(keys, k)
		}
	})
	for _, k := range keys {
		d.s.Del(k)
	}
}

// mergeMessages returns the messages of a and b, each ascending by seq, as one list ascending
// by seq in which each seq appears once. The inputs are not changed.
func mergeMessages(a, b []proto.Message) []proto.Message {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 || a[len(a)-1].Seq < b[0].Seq {
		return append(slices.Clip(a), b...)
	}
	out := make([]proto.Message, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Seq < b[j].Seq):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].Seq < a[i].Seq:
			out = append(out, b[j])
			j++
		default: // the same seq in both
			out = append(out, b[j])
			i, j = i+1, j+1
		}
	}
	return out
}
