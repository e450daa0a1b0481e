package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer and audience of Kaiwa's access tokens.
const (
	Issuer   = "kaiwa"
	Audience = "kaiwa"
)

// maxTokenLen caps what is handed to the JWT parser: Kaiwa's tokens are a few hundred bytes.
const maxTokenLen = 4096

// Claims are an access token's claims: sub is the user id, sid the session id.
type Claims struct {
	jwt.RegisteredClaims
	Name string `json:"name"`
	SID  string `json:"sid"`
}

// tokens signs and verifies access tokens with one key and exactly one algorithm.
type tokens struct {
	key    []byte
	ttl    time.Duration
	parser *jwt.Parser
}

func newTokens(key []byte, ttl time.Duration, now func() time.Time) *tokens {
	return &tokens{
		key: key,
		ttl: max(ttl.Truncate(time.Second), time.Second),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(Issuer),
			jwt.WithAudience(Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(now),
		),
	}
}

// issue returns a signed access token for the user and session, issued at now (whole seconds)
// and expiring ttl later.
func (t *tokens) issue(userID, name, sid string, now time.Time) (string, time.Time, error) {
	iat := now.Truncate(time.Second)
	exp := iat.Add(t.ttl)
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Audience:  jwt.ClaimStrings{Audience},
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        randomID(16),
		},
		Name: name,
		SID:  sid,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign token: %w", err)
	}
	return signed, exp, nil
}

// verify parses and checks an access token: ErrTokenExpired for a well-signed token past its
// exp and nothing else wrong, ErrUnauthorized for anything else.
func (t *tokens) verify(raw string) (*Claims, error) {
	if raw == "" || len(raw) > maxTokenLen {
		return nil, ErrUnauthorized
	}
	claims := new(Claims)
	_, err := t.parser.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return t.key, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired) && onlyExpired(err):
		return claims, ErrTokenExpired
	default:
		return nil, ErrUnauthorized
	}
	if claims.Subject == "" || claims.SID == "" || claims.ID == "" || claims.IssuedAt == nil {
		return nil, ErrUnauthorized
	}
	return claims, nil
}

// onlyExpired reports whether expiry is the one thing wrong with a token whose signature held:
// jwt joins every failed claim check into err, under ErrTokenInvalidClaims.
func onlyExpired(err error) bool {
	for _, other := range []error{
		jwt.ErrTokenInvalidIssuer, jwt.ErrTokenInvalidAudience, jwt.ErrTokenUsedBeforeIssued,
		jwt.ErrTokenNotValidYet, jwt.ErrTokenRequiredClaimMissing,
		jwt.ErrTokenSignatureInvalid, jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable,
	} {
		if errors.Is(err, other) {
			return false
		}
	}
	return true
}

// randomID returns n random bytes, base64url encoded.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
