package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"kaiwa/shared/proto"
)

// FuzzDecodeRequest feeds arbitrary bodies to the request decoder. It must never panic, must
// answer only bad_request or payload_too_large, and what it accepts must survive a round trip.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","password":"correct horse"}`,
		`{"name":"general"}`,
		`{"username":"alice"} `,
		`{"username":"alice"} {}`,
		`{"username":1}`,
		`{"username":"\u00e5\ud800"}`,
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var creds proto.Credentials
		err := decodeBody(body, &creds)
		if err != nil {
			if err != errBadJSON && err != errTooLarge {
				t.Fatalf("decode(%q): %v, want bad_request or payload_too_large", body, err)
			}
			if len(body) > proto.MaxBodyBytes && err != errTooLarge {
				t.Fatalf("decode of %d bytes: %v, want payload_too_large", len(body), err)
			}
			return
		}
		if len(body) > proto.MaxBodyBytes {
			t.Fatalf("decode accepted %d bytes", len(body))
		}
		again, err := json.Marshal(creds)
		if err != nil {
			t.Fatal(err)
		}
		var back proto.Credentials
		if err := decodeBody(again, &back); err != nil || back != creds {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", body, back, err, creds)
		}
	})
}

func decodeBody(body []byte, v any) error {
	r := httptest.NewRequest(http.MethodPost, "/api/auth/login", bytes.NewReader(body))
	return decode(httptest.NewRecorder(), r, v)
}

func TestDecodeLimit(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"just under the limit", append(append([]byte(`{"username":"`), bytes.Repeat([]byte("a"), proto.MaxBodyBytes-len(`{"username":""}`))...), `"}`...), nil},
		{"one byte over", append(append([]byte(`{"username":"`), bytes.Repeat([]byte("a"), proto.MaxBodyBytes-len(`{"username":""}`)+1)...), `"}`...), errTooLarge},
		{"white space after the value, over the limit", append([]byte(`{}`), bytes.Repeat([]byte(" "), proto.MaxBodyBytes)...), errTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var creds proto.Credentials
			if err := decodeBody(tc.body, &creds); !errors.Is(err, tc.want) {
				t.Errorf("decode of %d bytes: %v, want %v", len(tc.body), err, tc.want)
			}
		})
	}
}
