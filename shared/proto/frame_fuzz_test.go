package proto

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzFrame feeds arbitrary bytes to the frame decoder the server runs on every client message
// (json.Unmarshal into Frame, with UserField's own decoder) and to the validators applied next.
// Nothing may panic; a decoded frame must survive a round trip; the validators must keep their
// promises on whatever they are given. Seeds are under testdata/fuzz/FuzzFrame.
func FuzzFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr Frame
		if err := json.Unmarshal(data, &fr); err != nil {
			return
		}
		b, err := json.Marshal(fr)
		if err != nil {
			t.Fatalf("a decoded frame does not encode: %v", err)
		}
		var again Frame
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("an encoded frame does not decode: %v\n%s", err, b)
		}
		if again.Type != fr.Type || again.Room != fr.Room || again.ID != fr.ID || again.Text != fr.Text ||
			again.User.Name != fr.User.Name || again.User.ID != fr.User.ID || (again.After == nil) != (fr.After == nil) ||
			(fr.After != nil && *again.After != *fr.After) || !again.TS.Equal(fr.TS) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", fr, again)
		}
		if ValidRoomName(fr.Room) && (fr.Room == "" || len(fr.Room) > 64 || strings.Trim(fr.Room, "abcdefghijklmnopqrstuvwxyz0123456789-") != "") {
			t.Fatalf("room %q passed validation", fr.Room)
		}
		if ValidClientID(fr.ID) && (fr.ID == "" || utf8.RuneCountInString(fr.ID) > 64) {
			t.Fatalf("id %q passed validation", fr.ID)
		}
		text, code := NormalizeText(fr.Text)
		if code == "" && (text == "" || utf8.RuneCountInString(text) > 4000 || strings.TrimSpace(text) != text ||
			strings.IndexFunc(text, func(r rune) bool { return !Invisible(r) }) < 0) {
			t.Fatalf("text %q normalised to %q without an error code", fr.Text, text)
		}
	})
}
