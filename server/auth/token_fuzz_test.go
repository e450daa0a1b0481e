package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fuzz target verifies with a fixed key and clock, so that the seed corpus under
// testdata/fuzz/FuzzVerifyToken can hold tokens that are good for it.
var (
	fuzzKey = []byte("kaiwa fuzz signing key, 32 bytes")
	fuzzNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

// FuzzVerifyToken feeds arbitrary strings to the access-token verifier. It must never panic,
// and whatever it accepts (even as merely expired) must carry an HS256 signature made with the
// key: nothing else may pass.
func FuzzVerifyToken(f *testing.F) {
	tk := newTokens(fuzzKey, 10*time.Minute, func() time.Time { return fuzzNow })
	good, _, err := tk.issue("1", "alice", "sid", fuzzNow)
	if err != nil {
		f.Fatal(err)
	}
	expired, _, err := tk.issue("1", "alice", "sid", fuzzNow.Add(-time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	header, payload, _ := strings.Cut(good, ".")
	payload, sig, _ := strings.Cut(payload, ".")
	for _, seed := range []string{
		good,
		expired,
		header + "." + payload + ".",
		header + "." + payload,
		b64(`{"alg":"none","typ":"JWT"}`) + "." + payload + ".",
		b64(`{"alg":"HS512","typ":"JWT"}`) + "." + payload + "." + sig,
		header + "." + b64(`{"iss":"kaiwa","aud":["kaiwa"],"sub":"2","sid":"sid","jti":"x","iat":1893553445,"exp":1893554045}`) + "." + sig,
		`{"protected":"` + header + `","payload":"` + payload + `","signature":"` + sig + `"}`,
		"..",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := tk.verify(raw)
		switch {
		case err == nil, errors.Is(err, ErrTokenExpired):
			if claims == nil {
				t.Fatalf("verify(%q) = nil claims, %v", raw, err)
			}
			if !signedWith(fuzzKey, raw) {
				t.Fatalf("verify accepted %q (err %v), which the key did not sign with HS256", raw, err)
			}
		case errors.Is(err, ErrUnauthorized):
			if claims != nil {
				t.Fatalf("verify(%q) returned claims with ErrUnauthorized", raw)
			}
		default:
			t.Fatalf("verify(%q): unexpected error %v", raw, err)
		}
	})
}

// signedWith reports whether raw is a three-part JWT whose header says HS256 and whose signature
// is the HMAC-SHA256 of its first two parts under key.
func signedWith(key []byte, raw string) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	var header struct {
		Alg string `json:"alg"`
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(h, &header) != nil || header.Alg != "HS256" {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	return hmac.Equal(sig, mac.Sum(nil))
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestVerifyTokenCorpus keeps the seed corpus meaningful: its good token must pass and each
// forgery must fail the way its name says, or the fuzz target explores nothing near the edge.
func TestVerifyTokenCorpus(t *testing.T) {
	tk := newTokens(fuzzKey, 10*time.Minute, func() time.Time { return fuzzNow })
	tests := []struct {
		file string
		want error
	}{
		{"good", nil},
		{"expired", ErrTokenExpired},
		{"expired_wrong_aud", ErrUnauthorized},
		{"hs512_right_key", ErrUnauthorized},
		{"hs256_other_key", ErrUnauthorized},
		{"wrong_iss", ErrUnauthorized},
		{"no_exp", ErrUnauthorized},
		{"alg_none", ErrUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerifyToken", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			_, quoted, _ := strings.Cut(strings.TrimSpace(string(data)), "\nstring(")
			raw, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
			if err != nil {
				t.Fatalf("corpus file: %v", err)
			}
			if _, err := tk.verify(raw); !errors.Is(err, tc.want) {
				t.Errorf("verify: %v, want %v", err, tc.want)
			}
		})
	}
}
