package proto_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"kaiwa/shared/proto"
)

func TestMentionNames(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"hi @bob", []string{"bob"}},
		{"@Bob and @alice, @bob again", []string{"bob", "alice", "bob"}},
		{"thanks @bob.", []string{"bob"}},
		{"@bo is too short", nil},
		{"mail bob@example.com", nil},
		{"@ alone and @@bob", []string{"bob"}},
		{"(@carol)", []string{"carol"}},
		{"@a.b-c_9!", []string{"a.b-c_9"}},
		{"", nil},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			if got := proto.MentionNames(tc.text); !slices.Equal(got, tc.want) {
				t.Errorf("MentionNames(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestFrameRoomIsNameOrObject(t *testing.T) {
	tests := []struct {
		name, in string
		room     string
		object   bool
	}{
		{"name", `{"type":"join","room":"general"}`, "general", false},
		{"object", `{"type":"room","room":{"name":"dm-x","kind":"dm","member":false}}`, "dm-x", true},
		{"absent", `{"type":"hello"}`, "", false},
		{"null", `{"type":"join","room":null}`, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f proto.Frame
			if err := json.Unmarshal([]byte(tc.in), &f); err != nil {
				t.Fatal(err)
			}
			if f.Room != tc.room || (f.RoomInfo != nil) != tc.object {
				t.Errorf("room %q info %+v", f.Room, f.RoomInfo)
			}
			if tc.object && f.RoomInfo.Kind != proto.RoomDM {
				t.Errorf("kind = %q", f.RoomInfo.Kind)
			}
		})
	}
	var f proto.Frame
	if err := json.Unmarshal([]byte(`{"type":"join","room":7}`), &f); err == nil {
		t.Error("a number for a room decoded")
	}
}

// FuzzMentionNames feeds arbitrary text to the mention scanner the server runs on every
// message: every name it returns is a valid username that follows an "@" in the text.
// Seeds are under testdata/fuzz/FuzzMentionNames.
func FuzzMentionNames(f *testing.F) {
	f.Fuzz(func(t *testing.T, text string) {
		lower := strings.ToLower(text)
		for _, name := range proto.MentionNames(text) {
			if n, ok := proto.NormalizeUsername(name); !ok || n != name {
				t.Fatalf("%q: %q is not a username", text, name)
			}
			if !strings.Contains(lower, "@"+name) {
				t.Fatalf("%q: %q does not follow an @", text, name)
			}
		}
	})
}
