package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"kaiwa/server"
	"kaiwa/shared/proto"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// sign signs claims with the method and key, failing the test if it cannot.
func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsOf returns the claims of a token the server issued, checking its signature with key.
func claimsOf(t *testing.T, token string, key []byte) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	// Without claim validation: a token with a 1 s TTL may be past its exp by now.
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation()).ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return key, nil })
	if err != nil {
		t.Fatalf("parse the server's own token: %v", err)
	}
	return claims
}

// with returns a copy of c with the changes applied; a nil value deletes the claim.
func with(c jwt.MapClaims, changes jwt.MapClaims) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func TestForgedAccessTokens(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true})
	tb, refresh := signup(t, ts.URL, "alice")
	other, _ := signup(t, ts.URL, "mallory")
	key := ts.st.SigningKey()
	good := claimsOf(t, tb.AccessToken, key)
	parts := strings.Split(tb.AccessToken, ".")
	header, payload, sig := parts[0], parts[1], parts[2]
	otherParts := strings.Split(other.AccessToken, ".")

	none := func(alg string) string { return b64(`{"alg":"` + alg + `","typ":"JWT"}`) }
	hs256 := func(key []byte, c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, key, c) }
	tests := []struct {
		name   string
		header string // the whole Authorization header
	}{
		{"alg none", "Bearer " + none("none") + "." + payload + "."},
		{"alg None", "Bearer " + none("None") + "." + payload + "."},
		{"alg NONE", "Bearer " + none("NONE") + "." + payload + "."},
		{"alg nOnE", "Bearer " + none("nOnE") + "." + payload + "."},
		{"alg none with the real signature", "Bearer " + none("none") + "." + payload + "." + sig},
		{"alg None with the real signature", "Bearer " + none("None") + "." + payload + "." + sig},
		{"alg none signed by the library", "Bearer " + sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)},
		{"HS256 with another key", "Bearer " + hs256([]byte("another key, also thirty-two byte"), good)},
		{"HS256 with an empty key", "Bearer " + hs256([]byte{}, good)},
		{"HS384 with the right key", "Bearer " + sign(t, jwt.SigningMethodHS384, key, good)},
		{"HS512 with the right key", "Bearer " + sign(t, jwt.SigningMethodHS512, key, good)},
		{"RS256 header over the HS256 signature", "Bearer " + b64(`{"alg":"RS256","typ":"JWT"}`) + "." + payload + "." + sig},
		{"ES256 header over the HS256 signature", "Bearer " + b64(`{"alg":"ES256","typ":"JWT"}`) + "." + payload + "." + sig},
		{"sub changed, original signature", "Bearer " + header + "." + b64(strings.Replace(mustDecode(t, payload), `"sub":"`+tb.User.ID+`"`, `"sub":"`+other.User.ID+`"`, 1)) + "." + sig},
		{"payload of another token, original signature", "Bearer " + header + "." + otherParts[1] + "." + sig},
		{"no signature", "Bearer " + header + "." + payload + "."},
		{"two parts", "Bearer " + header + "." + payload},
		{"no exp", "Bearer " + hs256(key, with(good, jwt.MapClaims{"exp": nil}))},
		{"wrong iss", "Bearer " + hs256(key, with(good, jwt.MapClaims{"iss": "evil"}))},
		{"no iss", "Bearer " + hs256(key, with(good, jwt.MapClaims{"iss": nil}))},
		{"wrong aud", "Bearer " + hs256(key, with(good, jwt.MapClaims{"aud": []string{"other"}}))},
		{"no aud", "Bearer " + hs256(key, with(good, jwt.MapClaims{"aud": nil}))},
		{"iat in the future", "Bearer " + hs256(key, with(good, jwt.MapClaims{"iat": time.Now().Add(time.Hour).Unix(), "exp": time.Now().Add(2 * time.Hour).Unix()}))},
		{"nbf in the future", "Bearer " + hs256(key, with(good, jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()}))},
		{"no sid", "Bearer " + hs256(key, with(good, jwt.MapClaims{"sid": nil}))},
		{"unknown sid", "Bearer " + hs256(key, with(good, jwt.MapClaims{"sid": "no-such-session"}))},
		{"refresh token as access token", "Bearer " + refresh},
		{"100 000 dots", "Bearer " + strings.Repeat(".", 100_000)},
		{"longer than 4096 bytes", "Bearer " + hs256(key, with(good, jwt.MapClaims{"pad": strings.Repeat("x", 4096)}))},
		{"JSON serialization", "Bearer " + `{"protected":"` + header + `","payload":"` + payload + `","signature":"` + sig + `"}`},
		{"garbage", "Bearer not-a-token"},
		{"empty bearer", "Bearer "},
		{"bare scheme", "Bearer"},
		{"wrong scheme", "Basic " + tb.AccessToken},
		{"token without scheme", tb.AccessToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, ts.URL, request{method: "GET", path: "/api/me", header: map[string]string{"Authorization": tc.header}})
			wantError(t, resp, http.StatusUnauthorized, proto.CodeUnauthorized)
		})
	}

	// The same request with the genuine token passes: the table fails for the right reasons.
	t.Run("genuine token", func(t *testing.T) {
		var ub proto.UserBody
		decodeBody(t, do(t, ts.URL, request{method: "GET", path: "/api/me", token: tb.AccessToken}), http.StatusOK, &ub)
		if ub.User != tb.User {
			t.Errorf("me = %+v, want %+v", ub.User, tb.User)
		}
	})
	t.Run("re-signed copy of the genuine claims", func(t *testing.T) {
		resp := do(t, ts.URL, request{method: "GET", path: "/api/me", token: hs256(key, good)})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status %d, want 200: the forgeries above would fail for the wrong reason", resp.StatusCode)
		}
	})
	t.Run("lowercase scheme", func(t *testing.T) {
		resp := do(t, ts.URL, request{method: "GET", path: "/api/me", header: map[string]string{"Authorization": "bearer " + tb.AccessToken}})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status %d, want 200: the auth scheme is case-insensitive", resp.StatusCode)
		}
	})
}

func mustDecode(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAccessTokenExpiry(t *testing.T) {
	t.Parallel()
	ts := newServer(t, server.Config{Registration: true, AccessTTL: time.Second})
	tb, _ := signup(t, ts.URL, "alice")
	key := ts.st.SigningKey()
	claims := claimsOf(t, tb.AccessToken, key)

	t.Run("claims", func(t *testing.T) {
		for _, name := range []string{"iss", "aud", "sub", "name", "sid", "iat", "exp", "jti"} {
			if _, ok := claims[name]; !ok {
				t.Errorf("claim %q missing from %v", name, claims)
			}
		}
		iat, _ := claims.GetIssuedAt()
		exp, _ := claims.GetExpirationTime()
		if exp == nil || iat == nil || exp.Sub(iat.Time) != time.Second {
			t.Errorf("exp %v - iat %v, want the access TTL of 1s", exp, iat)
		}
		if sub, _ := claims.GetSubject(); sub != tb.User.ID || claims["name"] != "alice" {
			t.Errorf("sub %q, name %v; want %q, alice", sub, claims["name"], tb.User.ID)
		}
		if tb.ExpiresIn < 0 || tb.ExpiresIn > 1 || tb.TokenType != proto.TokenType || !tb.ExpiresAt.Equal(exp.Time) {
			t.Errorf("token body expires_in %d, token_type %q, expires_at %v; want 0 or 1 (exp - now), Bearer, %v", tb.ExpiresIn, tb.TokenType, tb.ExpiresAt, exp.Time)
		}
	})

	expired := with(claims, jwt.MapClaims{"iat": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(-time.Minute).Unix()})
	tests := []struct {
		name  string
		token func() string
		code  string
	}{
		{"past its exp", func() string {
			exp, _ := claims.GetExpirationTime()
			time.Sleep(time.Until(exp.Time) + 10*time.Millisecond) // at most the 1 s TTL
			return tb.AccessToken
		}, proto.CodeTokenExpired},
		{"signed past its exp", func() string { return sign(t, jwt.SigningMethodHS256, key, expired) }, proto.CodeTokenExpired},
		{"expired with wrong iss", func() string {
			return sign(t, jwt.SigningMethodHS256, key, with(expired, jwt.MapClaims{"iss": "evil"}))
		}, proto.CodeUnauthorized},
		{"expired with wrong aud", func() string {
			return sign(t, jwt.SigningMethodHS256, key, with(expired, jwt.MapClaims{"aud": "other"}))
		}, proto.CodeUnauthorized},
		{"expired with another key", func() string {
			return sign(t, jwt.SigningMethodHS256, []byte("another key, also thirty-two byte"), expired)
		}, proto.CodeUnauthorized},
		{"expired HS512", func() string { return sign(t, jwt.SigningMethodHS512, key, expired) }, proto.CodeUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, ts.URL, request{method: "GET", path: "/api/me", token: tc.token()})
			wantError(t, resp, http.StatusUnauthorized, tc.code)
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", got)
			}
		})
	}
}

// expires_in is exp - now in whole seconds, for every token body; exp is iat + ttl.
func TestExpiresIn(t *testing.T) {
	t.Parallel()
	const ttl = 90 * time.Second
	ts := newServer(t, server.Config{Registration: true, AccessTTL: ttl})
	var cookie string
	for _, tc := range []struct {
		req    request
		status int
	}{
		{request{method: "POST", path: "/api/auth/register", body: `{"username":"alice","password":"correct horse"}`}, http.StatusCreated},
		{request{method: "POST", path: "/api/auth/login", body: `{"username":"alice","password":"correct horse"}`}, http.StatusOK},
		{request{method: "POST", path: "/api/auth/refresh"}, http.StatusOK},
	} {
		req := tc.req
		t.Run(req.path, func(t *testing.T) {
			req.cookie = cookie
			before := time.Now()
			resp := do(t, ts.URL, req)
			after := time.Now()
			var tb proto.TokenBody
			decodeBody(t, resp, tc.status, &tb)
			cookie = refreshCookie(t, resp).Value
			var raw map[string]json.RawMessage
			json.Unmarshal(resp.body, &raw)
			for _, field := range []string{"user", "access_token", "token_type", "expires_in", "expires_at"} {
				if _, ok := raw[field]; !ok {
					t.Errorf("token body lacks %q: %s", field, resp.body)
				}
			}
			claims := claimsOf(t, tb.AccessToken, ts.st.SigningKey())
			iat, _ := claims.GetIssuedAt()
			exp, _ := claims.GetExpirationTime()
			if exp.Sub(iat.Time) != ttl || !tb.ExpiresAt.Equal(exp.Time) {
				t.Errorf("iat %v, exp %v, expires_at %v; want exp = iat + %v = expires_at", iat, exp, tb.ExpiresAt, ttl)
			}
			// The server's now lies between before and after.
			lo, hi := int64(exp.Sub(after)/time.Second), int64((exp.Sub(before)+time.Second-1)/time.Second)
			if tb.ExpiresIn < lo || tb.ExpiresIn > hi {
				t.Errorf("expires_in %d, want exp - now in [%d, %d]", tb.ExpiresIn, lo, hi)
			}
		})
	}
}
