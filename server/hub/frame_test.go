package hub

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"kaiwa/shared/proto"
)

// TestMessageFrame: a stored message becomes the very bytes of its live frame, however its
// text is made; a stored form of another shape is decoded and encoded.
func TestMessageFrame(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	for _, text := range []string{"hello", `quotes " and \ backslash`, "<script>&", "日本語 😀", "line\nbreak\u2028", "\x00\x1f"} {
		msg := proto.Message{Room: "general", Seq: 42, ID: "c1", From: "alice", Text: text, TS: ts}
		stored, err := json.Marshal(msg) // as the store writes it
		if err != nil {
			t.Fatal(err)
		}
		msg.Type = proto.TypeMessage
		live := encode(msg)
		got, err := messageFrame(stored)
		if err != nil || !bytes.Equal(got, live) {
			t.Errorf("text %q:\n got %s, %v\nwant %s", text, got, err, live)
		}
	}
	other := []byte(`{"seq":1,"room":"general","id":"c1","from":"alice","text":"hi","ts":"2026-01-02T03:04:05Z"}`)
	got, err := messageFrame(other)
	if err != nil || !bytes.HasPrefix(got, []byte(`{"type":"message","room":"general","seq":1,`)) {
		t.Errorf("other shape: %s, %v", got, err)
	}
	if _, err := messageFrame([]byte("{garbage")); err == nil {
		t.Error("garbage made a frame")
	}
}
