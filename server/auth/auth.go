package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// Errors callers branch on. The API maps each to one error code.
var (
	ErrInvalidCredentials = errors.New("auth: invalid credentials")
	ErrUnauthorized       = errors.New("auth: unauthorized")
	ErrTokenExpired       = errors.New("auth: token expired")
	ErrRefreshReused      = errors.New("auth: refresh token reused")
	ErrInvalidUsername    = errors.New("auth: invalid username")
	ErrInvalidPassword    = errors.New("auth: invalid password")
	ErrUsernameTaken      = errors.New("auth: username taken")
)

// RefreshGrace is how long after its rotation a refresh token still yields a sibling token
// instead of revoking its session.
const RefreshGrace = 10 * time.Second

// Limits on what a session remembers of its tokens.
const (
	maxCurrent = 8  // live sibling tokens; the oldest becomes rotated beyond this
	maxRotated = 64 // rotated token hashes kept for reuse detection
)

// Config sets token lifetimes. Zero values mean the defaults.
type Config struct {
	AccessTTL  time.Duration // access JWT lifetime; default 10m
	RefreshTTL time.Duration // refresh session lifetime, sliding; default 720h
	// HashConcurrency bounds argon2id hashes running at once; default half the CPUs, at least 1.
	HashConcurrency int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Auth signs users in and verifies their tokens. It is safe for concurrent use.
type Auth struct {
	st     store.Engine
	cfg    Config
	tokens *tokens
	hasher *hasher
	dummy  string // hash checked for unknown users, so they cost what a wrong password costs
}

// DefaultHashConcurrency is the number of argon2id hashes that run at once unless
// Config.HashConcurrency says otherwise: half the CPUs, at least one.
func DefaultHashConcurrency() int { return max(1, runtime.NumCPU()/2) }

// New returns an Auth over the store, signing with the store's key. Sessions it revokes (logout,
// refresh reuse, password change, disabling) are told by the store to its Observer, which
// closes their open sockets.
func New(st store.Engine, cfg Config) (*Auth, error) {
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 10 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 720 * time.Hour
	}
	if cfg.HashConcurrency <= 0 {
		cfg.HashConcurrency = DefaultHashConcurrency()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Auth{st: st, cfg: cfg, tokens: newTokens(st.SigningKey(), cfg.AccessTTL, cfg.Now), hasher: newHasher(cfg.HashConcurrency)}
	dummy, err := a.hasher.hash(context.Background(), randomID(16))
	if err != nil {
		return nil, err
	}
	a.dummy = dummy
	return a, nil
}

// Grant is what a successful sign-in or refresh hands out.
type Grant struct {
	User      store.User
	SessionID string
	Access    string    // access JWT
	Now       time.Time // when it was granted
	ExpiresAt time.Time // the access token's exp: iat (Now in whole seconds) + ttl
	Refresh   string    // new opaque refresh token
}

// Body returns the API's token body for the grant.
func (g Grant) Body() proto.TokenBody {
	return proto.TokenBody{
		User:        PublicUser(g.User),
		AccessToken: g.Access,
		TokenType:   proto.TokenType,
		ExpiresIn:   int64(g.ExpiresAt.Sub(g.Now) / time.Second), // exp − now, whole seconds
		ExpiresAt:   g.ExpiresAt.UTC(),
	}
}

// PublicUser is the user as the API shows it.
func PublicUser(u store.User) proto.User {
	return proto.User{ID: u.ID, Name: u.Name, Admin: u.Admin}
}

// RefreshTTL returns the refresh session lifetime.
func (a *Auth) RefreshTTL() time.Duration { return a.cfg.RefreshTTL }

// HashPassword validates and hashes a password.
func (a *Auth) HashPassword(ctx context.Context, password string) (string, error) {
	if !proto.ValidPassword(password) {
		return "", ErrInvalidPassword
	}
	return a.hasher.hash(ctx, password)
}

// CreateUser validates and stores a new user without signing in.
func (a *Auth) CreateUser(ctx context.Context, username, password string, admin bool) (store.User, error) {
	name, ok := proto.NormalizeUsername(username)
	if !ok {
		return store.User{}, ErrInvalidUsername
	}
	hash, err := a.HashPassword(ctx, password)
	if err != nil {
		return store.User{}, err
	}
	u, err := a.st.CreateUser(name, hash, admin)
	if errors.Is(err, store.ErrUsernameTaken) {
		return store.User{}, ErrUsernameTaken
	}
	return u, err
}

// Register creates an account and signs it in.
func (a *Auth) Register(ctx context.Context, username, password string) (Grant, error) {
	u, err := a.CreateUser(ctx, username, password, false)
	if err != nil {
		return Grant{}, err
	}
	return a.startSession(u)
}

// Login checks a username and password. Unknown users and wrong passwords both give
// ErrInvalidCredentials after the same work; a username that cannot exist (not a valid name
// once lowercased) gives it at once, without hashing: it tells nothing about who exists.
// Disabled users give ErrInvalidCredentials too, after the work of a right password.
func (a *Auth) Login(ctx context.Context, username, password string) (Grant, error) {
	name, ok := proto.NormalizeUsername(username)
	if !ok {
		return Grant{}, ErrInvalidCredentials
	}
	u, err := a.st.UserByName(name)
	hash := u.PasswordHash
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return Grant{}, err
		}
		hash = a.dummy
	}
	ok, verr := a.hasher.verify(ctx, hash, password)
	if verr != nil {
		return Grant{}, verr
	}
	if err != nil || !ok || u.Disabled {
		return Grant{}, ErrInvalidCredentials
	}
	return a.startSession(u)
}

// SetPassword changes a user's password and revokes all of the user's sessions.
func (a *Auth) SetPassword(ctx context.Context, username, password string) error {
	name, _ := proto.NormalizeUsername(username)
	u, err := a.st.UserByName(name)
	if err != nil {
		return err
	}
	hash, err := a.HashPassword(ctx, password)
	if err != nil {
		return err
	}
	if _, err := a.st.UpdateUser(u.ID, func(u *store.User) { u.PasswordHash = hash }); err != nil {
		return err
	}
	_, err = a.st.RevokeUserSessions(u.ID)
	return err
}

// SetDisabled disables or enables the user named username. Disabling revokes every session of
// the user (the store's Observer closes their sockets); until enabled again the user cannot sign in
// (ErrInvalidCredentials) or refresh (ErrUnauthorized). store.ErrNotFound for an unknown user.
func (a *Auth) SetDisabled(username string, disabled bool) error {
	name, ok := proto.NormalizeUsername(username)
	if !ok {
		return fmt.Errorf("auth: disable %q: %w", username, store.ErrNotFound)
	}
	u, err := a.st.UserByName(name)
	if err != nil {
		return err
	}
	_, err = a.st.SetUserDisabled(u.ID, disabled)
	return err
}

func (a *Auth) startSession(u store.User) (Grant, error) {
	now := a.cfg.Now()
	sid := randomID(16)
	secret := randomID(32)
	sess := store.Session{
		ID: sid, UserID: u.ID, CreatedAt: now.UTC(), ExpiresAt: now.Add(a.cfg.RefreshTTL).UTC(),
		Current: [][]byte{hashSecret(secret)},
	}
	if err := a.st.CreateSession(sess); errors.Is(err, store.ErrDisabled) {
		return Grant{}, ErrInvalidCredentials // disabled while its password was being checked
	} else if err != nil {
		return Grant{}, err
	}
	return a.grant(u, sid, sid+"."+secret, now)
}

func (a *Auth) grant(u store.User, sid, refresh string, now time.Time) (Grant, error) {
	access, exp, err := a.tokens.issue(u.ID, u.Name, sid, now)
	if err != nil {
		return Grant{}, err
	}
	return Grant{User: u, SessionID: sid, Access: access, Now: now, ExpiresAt: exp, Refresh: refresh}, nil
}

// Refresh trades a refresh token for a new access token and a new refresh token. A token
// rotated away is tolerated in two cases: within RefreshGrace of its rotation it yields a sibling
// and its successors stay valid (tabs refreshing at once); at any time, the token rotated away
// most recently, while none of its successors has been used, yields a new token and voids
// them (an answer lost on its way, a cookie the browser never saved). Any other rotated token,
// and a voided one, revokes its session and gives ErrRefreshReused; an unknown, expired or
// revoked one, or one of a disabled user, gives ErrUnauthorized.
func (a *Auth) Refresh(ctx context.Context, refresh string) (Grant, error) {
	sid, secret, ok := splitRefresh(refresh)
	if !ok {
		return Grant{}, ErrUnauthorized
	}
	// Everything the answer needs is read before the rotation is committed: once it is, the
	// client must get the new token, or its next refresh presents one rotated away.
	stored, err := a.st.Session(sid)
	if errors.Is(err, store.ErrNotFound) {
		return Grant{}, ErrUnauthorized
	} else if err != nil {
		return Grant{}, err
	}
	u, err := a.st.UserByID(stored.UserID)
	if err != nil {
		return Grant{}, fmt.Errorf("auth: refresh: %w", err)
	}
	if u.Disabled {
		return Grant{}, ErrUnauthorized
	}
	now := a.cfg.Now()
	h := hashSecret(secret)
	newSecret := randomID(32)
	_, err = a.st.UpdateSession(sid, func(s *store.Session) error {
		if s.Revoked || now.After(s.ExpiresAt) {
			return ErrUnauthorized
		}
		if err := rotate(s, h, hashSecret(newSecret), now.UTC()); err != nil {
			return err
		}
		s.ExpiresAt = now.Add(a.cfg.RefreshTTL).UTC()
		return nil
	})
	switch {
	case errors.Is(err, ErrRefreshReused):
		return Grant{}, err
	case errors.Is(err, store.ErrNotFound), errors.Is(err, ErrUnauthorized):
		return Grant{}, ErrUnauthorized
	case err != nil:
		return Grant{}, err
	}
	return a.grant(u, sid, sid+"."+newSecret, now)
}

// rotate trades the token hashed h for the one hashed next in s, as Refresh describes. On
// ErrRefreshReused it has revoked s; on ErrUnauthorized it has not changed s.
func rotate(s *store.Session, h, next []byte, now time.Time) error {
	switch i := indexOf(s.Current, h); {
	case i >= 0: // a live token: the ordinary rotation
		s.Current = append(s.Current[:i], s.Current[i+1:]...)
		s.Rotated = append(s.Rotated, store.RotatedKey{Hash: h, At: now})
		s.Last = &store.LastRotation{Hash: h, At: now, Successors: [][]byte{next}}
	case s.Last != nil && subtle.ConstantTimeCompare(s.Last.Hash, h) == 1:
		if now.Sub(s.Last.At) > RefreshGrace {
			// No successor of the last rotation was used (using one moves Last on): the
			// answer that carried them was lost. They are voided and h is rotated anew.
			for _, succ := range s.Last.Successors {
				if j := indexOf(s.Current, succ); j >= 0 {
					s.Current = append(s.Current[:j], s.Current[j+1:]...)
					s.Rotated = append(s.Rotated, store.RotatedKey{Hash: succ, At: now, Voided: true})
				}
			}
			s.Last.At, s.Last.Successors = now, nil
			if j := indexRotated(s.Rotated, h); j >= 0 {
				s.Rotated[j].At = now
			}
		}
		s.Last.Successors = append(s.Last.Successors, next)
		if n := len(s.Last.Successors); n > maxCurrent {
			s.Last.Successors = s.Last.Successors[n-maxCurrent:]
		}
	default:
		j := indexRotated(s.Rotated, h)
		switch {
		case j < 0:
			return ErrUnauthorized // not a token of this session: a forgery must not revoke it
		case s.Rotated[j].Voided, now.Sub(s.Rotated[j].At) > RefreshGrace:
			s.Revoked, s.Current, s.Rotated, s.Last = true, nil, nil, nil
			return ErrRefreshReused
		}
	}
	s.Current = append(s.Current, next)
	for len(s.Current) > maxCurrent {
		s.Rotated = append(s.Rotated, store.RotatedKey{Hash: s.Current[0], At: now})
		s.Current = s.Current[1:]
	}
	if len(s.Rotated) > maxRotated {
		s.Rotated = s.Rotated[len(s.Rotated)-maxRotated:]
	}
	return nil
}

// Logout revokes the session of a refresh token, current or rotated. It returns the session id,
// or "" when the token belongs to no session.
func (a *Auth) Logout(refresh string) (string, error) {
	sid, secret, ok := splitRefresh(refresh)
	if !ok {
		return "", nil
	}
	h := hashSecret(secret)
	var revoked bool
	_, err := a.st.UpdateSession(sid, func(s *store.Session) error {
		if s.Revoked || (indexOf(s.Current, h) < 0 && indexRotated(s.Rotated, h) < 0) {
			return nil
		}
		s.Revoked, s.Current, s.Rotated, s.Last = true, nil, nil, nil
		revoked = true
		return nil
	})
	if errors.Is(err, store.ErrNotFound) || !revoked {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return sid, nil
}

// VerifyToken checks an access token alone, not its session: ErrTokenExpired for a good token
// past its exp (the claims are returned too), ErrUnauthorized for any other bad token.
func (a *Auth) VerifyToken(token string) (*Claims, error) {
	return a.tokens.verify(token)
}

// Verify checks an access token and its session. ErrTokenExpired for a good token past its exp
// (the claims are returned too); ErrUnauthorized for any other bad token or a revoked session.
func (a *Auth) Verify(token string) (*Claims, error) {
	claims, err := a.tokens.verify(token)
	if err != nil {
		return claims, err
	}
	if !a.SessionLive(claims.SID) {
		return nil, ErrUnauthorized
	}
	return claims, nil
}

// SessionLive reports whether the session exists and is not revoked.
func (a *Auth) SessionLive(sid string) bool {
	s, err := a.st.Session(sid)
	return err == nil && !s.Revoked
}

func splitRefresh(refresh string) (sid, secret string, ok bool) {
	sid, secret, ok = strings.Cut(refresh, ".")
	return sid, secret, ok && sid != "" && secret != "" && len(refresh) <= 256
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func indexOf(hashes [][]byte, h []byte) int {
	for i, c := range hashes {
		if subtle.ConstantTimeCompare(c, h) == 1 {
			return i
		}
	}
	return -1
}

// indexRotated returns the index of h among the rotated tokens, or -1.
func indexRotated(rotated []store.RotatedKey, h []byte) int {
	for i, r := range rotated {
		if subtle.ConstantTimeCompare(r.Hash, h) == 1 {
			return i
		}
	}
	return -1
}
