package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"kaiwa/server/auth"
	"kaiwa/server/hub"
	"kaiwa/server/metrics"
	"kaiwa/server/store"
	"kaiwa/shared/proto"
)

// Config holds the API's settings.
type Config struct {
	Origins       auth.Origins
	Registration  bool   // open registration
	SecureCookies string // "auto" (default), "always" or "never"
	Hub           *hub.Hub
	// Metrics receives counts of refused credentials; nil means a set nobody serves.
	Metrics *metrics.Metrics
	// Registrations limits sign-ups per client IP, RoomCreations room creations per user
	// (NewAbuseLimiter); nil means no limit.
	Registrations, RoomCreations *auth.Limiter
}

// The abuse limits of registrations and room creations: AbuseBurst at once, then one every
// AbuseInterval.
const (
	AbuseBurst    = 20
	AbuseInterval = 10 * time.Second
)

// NewAbuseLimiter returns a limiter of the abuse limits for Config.Registrations or
// Config.RoomCreations. A nil now means time.Now.
func NewAbuseLimiter(now func() time.Time) *auth.Limiter {
	return auth.NewLimiter(rate.Every(AbuseInterval), AbuseBurst, 0, now)
}

// API serves /api/. Build it with New and mount it with Register.
type API struct {
	cfg      Config
	st       store.Engine
	auth     *auth.Auth
	throttle *auth.Throttle
	log      *slog.Logger
}

// New returns the API over its dependencies. The effects of the changes it stores on open
// sockets (room frames, closed sessions, deleted rooms) come from the store's Observer.
func New(cfg Config, st store.Engine, a *auth.Auth, throttle *auth.Throttle, log *slog.Logger) *API {
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	return &API{cfg: cfg, st: st, auth: a, throttle: throttle, log: log}
}

// Register mounts the API's routes on mux. Every path under /api/ answers with the API's error
// shape, also for unknown paths and wrong methods.
func (a *API) Register(mux *http.ServeMux) {
	routes := []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{"POST", "/api/auth/register", a.sameOrigin(a.register)},
		{"POST", "/api/auth/login", a.sameOrigin(a.login)},
		{"POST", "/api/auth/refresh", a.sameOrigin(a.refresh)},
		{"POST", "/api/auth/logout", a.sameOrigin(a.logout)},
		{"GET", "/api/me", a.bearer(a.me)},
		{"GET", "/api/rooms", a.bearer(a.rooms)},
		{"POST", "/api/rooms", a.bearer(a.createRoom)},
		{"GET", "/api/rooms/{room}", a.bearer(a.room)},
		{"GET", "/api/rooms/{room}/messages", a.bearer(a.messages)},
		{"POST", "/api/rooms/{room}/members", a.bearer(a.addMember)},
		{"DELETE", "/api/rooms/{room}/members/{user}", a.bearer(a.removeMember)},
		{"POST", "/api/dms", a.bearer(a.dm)},
		{"GET", "/api/users", a.bearer(a.users)},
		{"GET", "/api/admin/backup", a.bearer(a.admin(a.backup))},
		{"POST", "/api/admin/users/{user}/disable", a.bearer(a.admin(a.setDisabled(true)))},
		{"POST", "/api/admin/users/{user}/enable", a.bearer(a.admin(a.setDisabled(false)))},
		{"DELETE", "/api/admin/rooms/{room}", a.bearer(a.admin(a.deleteRoom))},
		{"GET", "/ws", a.websocket},
	}
	allowed := map[string][]string{} // path → its methods, in the order of routes
	for _, rt := range routes {
		mux.Handle(rt.method+" "+rt.path, noStore(rt.h))
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	for path, methods := range allowed {
		mux.Handle(path, noStore(a.methodNotAllowed(strings.Join(methods, ", "))))
	}
	mux.Handle("/api/", noStore(func(w http.ResponseWriter, r *http.Request) { a.writeError(w, r, errNotFound) }))
}

// methodNotAllowed answers 405 with the methods the path takes in Allow.
func (a *API) methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		a.writeError(w, r, errorf(http.StatusMethodNotAllowed, proto.CodeMethodNotAllowed, "That method is not allowed here."))
	}
}

func noStore(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h(w, r)
	})
}

// sameOrigin refuses cross-origin browser requests to /api/auth/*.
func (a *API) sameOrigin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.cfg.Origins.Allowed(r) {
			a.writeError(w, r, errorf(http.StatusForbidden, proto.CodeForbiddenOrigin, "Requests from this origin are not allowed."))
			return
		}
		h(w, r)
	}
}

type claimsKey struct{}

// bearer lets through only requests with a valid access token of a live session.
func (a *API) bearer(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			a.cfg.Metrics.TokenFailures.Inc()
			a.writeError(w, r, errUnauthorized)
			return
		}
		claims, err := a.auth.Verify(strings.TrimSpace(token))
		if err != nil {
			a.cfg.Metrics.TokenFailures.Inc()
			a.writeError(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
	}
}

func claimsOf(r *http.Request) *auth.Claims { return r.Context().Value(claimsKey{}).(*auth.Claims) }

// admin lets through only administrators; it runs inside bearer.
func (a *API) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := a.st.UserByID(claimsOf(r).Subject)
		if err != nil || !u.Admin {
			a.writeError(w, r, errorf(http.StatusForbidden, proto.CodeForbidden, "Only an administrator may do this."))
			return
		}
		h(w, r)
	}
}

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.Registration {
		a.writeError(w, r, errorf(http.StatusForbidden, proto.CodeRegistrationClosed, "Registration is closed on this server."))
		return
	}
	var creds proto.Credentials
	if err := decode(w, r, &creds); err != nil {
		a.writeError(w, r, err)
		return
	}
	// Only a sign-up that will be hashed counts: a badly formed one costs nothing.
	if _, ok := proto.NormalizeUsername(creds.Username); ok && proto.ValidPassword(creds.Password) &&
		a.limited(w, r, a.cfg.Registrations, auth.ClientIP(r)) {
		return
	}
	g, err := a.auth.Register(r.Context(), creds.Username, creds.Password)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.log.Info("user_registered", slog.String("user", g.User.Name))
	a.writeGrant(w, r, http.StatusCreated, g)
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var creds proto.Credentials
	if err := decode(w, r, &creds); err != nil {
		a.writeError(w, r, err)
		return
	}
	name, valid := proto.NormalizeUsername(creds.Username)
	if !valid {
		name = "" // a name that cannot exist is never hashed for, nor remembered
	}
	ip := auth.ClientIP(r)
	if wait := a.throttle.Check(name, ip); wait > 0 {
		a.cfg.Metrics.LoginThrottled.Inc()
		w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(wait)))
		a.writeError(w, r, tooManyAttempts(wait))
		return
	}
	g, err := a.auth.Login(r.Context(), creds.Username, creds.Password)
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		a.cfg.Metrics.LoginFailures.Inc()
		if valid {
			a.throttle.Fail(name, ip)
		}
	case err != nil && r.Context().Err() != nil:
		// The client gave up while its password waited for a hash: not a failure, not a fault.
		a.log.Info("login_abandoned", slog.String("ip", ip), slog.Any("err", err))
		return
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.throttle.Succeed(name, ip)
	a.writeGrant(w, r, http.StatusOK, g)
}

func (a *API) refresh(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(proto.RefreshCookie)
	if err != nil {
		a.cfg.Metrics.RefreshFailures.Inc()
		a.writeError(w, r, errUnauthorized)
		return
	}
	g, err := a.auth.Refresh(r.Context(), c.Value)
	if err != nil {
		a.cfg.Metrics.RefreshFailures.Inc()
		if errors.Is(err, auth.ErrRefreshReused) {
			a.cfg.Metrics.RefreshReuse.Inc()
			a.log.Warn("refresh_reused", slog.String("ip", auth.ClientIP(r)))
		}
		// Only a token refused for good is cleared: a fault of the server (storage, say) must
		// never sign the user out.
		if errors.Is(err, auth.ErrUnauthorized) || errors.Is(err, auth.ErrRefreshReused) {
			a.clearCookie(w, r)
		}
		a.writeError(w, r, err)
		return
	}
	a.writeGrant(w, r, http.StatusOK, g)
}

func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(proto.RefreshCookie); err == nil {
		if _, err := a.auth.Logout(c.Value); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	a.clearCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) me(w http.ResponseWriter, r *http.Request) {
	u, err := a.st.UserByID(claimsOf(r).Subject)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proto.UserBody{User: auth.PublicUser(u)})
}

// pageQuery reads before, after and limit. Both cursors, a cursor that is not a number, or a
// limit outside 1–200 are a bad request.
func pageQuery(r *http.Request) (before, after *uint64, limit int, err error) {
	q := r.URL.Query()
	bad := func(msg string) error { return errorf(http.StatusBadRequest, proto.CodeBadRequest, msg) }
	cursor := func(name string) (*uint64, error) {
		if !q.Has(name) {
			return nil, nil
		}
		v, err := strconv.ParseUint(q.Get(name), 10, 64)
		if err != nil {
			return nil, bad(name + " must be a message seq (a whole number).")
		}
		return &v, nil
	}
	if before, err = cursor("before"); err != nil {
		return nil, nil, 0, err
	}
	if after, err = cursor("after"); err != nil {
		return nil, nil, 0, err
	}
	if before != nil && after != nil {
		return nil, nil, 0, bad("Use before or after, not both.")
	}
	limit = proto.PageDefault
	if q.Has("limit") {
		limit, err = strconv.Atoi(q.Get("limit"))
		if err != nil || limit < 1 || limit > proto.PageMax {
			return nil, nil, 0, bad(fmt.Sprintf("limit must be from 1 to %d.", proto.PageMax))
		}
	}
	return before, after, limit, nil
}

func (a *API) backup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="kaiwa-`+time.Now().UTC().Format("20060102-150405")+`.db"`)
	n, err := a.st.Backup(w)
	if err != nil {
		// Headers are gone; cutting the stream short is all that is left to say.
		a.log.Error("backup_failed", slog.Int64("bytes", n), slog.Any("err", err))
		panic(http.ErrAbortHandler)
	}
	a.log.Info("backup_sent", slog.Int64("bytes", n), slog.String("user", claimsOf(r).Name))
}

// limited takes a token of lim for key and reports whether none was left, in which case it has
// answered 429 with Retry-After. A nil lim never limits.
func (a *API) limited(w http.ResponseWriter, r *http.Request, lim *auth.Limiter, key string) bool {
	if lim == nil {
		return false
	}
	wait := lim.Allow(key)
	if wait == 0 {
		return false
	}
	secs := strconv.Itoa(retrySeconds(wait))
	w.Header().Set("Retry-After", secs)
	a.writeError(w, r, errorf(http.StatusTooManyRequests, proto.CodeTooManyRequests, "Too many requests. Try again in "+secs+" s."))
	return true
}

// setDisabled disables or enables the user of the path. An administrator cannot disable
// themselves: the last one would lock everyone out of the admin endpoints.
func (a *API) setDisabled(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, _ := proto.NormalizeUsername(r.PathValue("user"))
		if disabled && name == claimsOf(r).Name {
			a.writeError(w, r, errorf(http.StatusForbidden, proto.CodeForbidden, "An administrator cannot disable themselves."))
			return
		}
		if err := a.auth.SetDisabled(name, disabled); err != nil {
			a.writeError(w, r, err)
			return
		}
		event := "user_enabled"
		if disabled {
			event = "user_disabled"
		}
		a.log.Info(event, slog.String("user", name), slog.String("by", claimsOf(r).Name))
		w.WriteHeader(http.StatusNoContent)
	}
}

// writeGrant sets the refresh cookie and writes the token body.
func (a *API) writeGrant(w http.ResponseWriter, r *http.Request, status int, g auth.Grant) {
	http.SetCookie(w, &http.Cookie{
		Name: proto.RefreshCookie, Value: g.Refresh, Path: proto.RefreshCookiePath,
		MaxAge: int(a.auth.RefreshTTL() / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: a.secure(r),
	})
	http.SetCookie(w, &http.Cookie{
		Name: proto.SessionHintCookie, Value: "1", Path: "/",
		MaxAge: int(a.auth.RefreshTTL() / time.Second), SameSite: http.SameSiteStrictMode,
		Secure: a.secure(r),
	})
	writeJSON(w, status, g.Body())
}

func (a *API) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: proto.RefreshCookie, Path: proto.RefreshCookiePath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: a.secure(r),
	})
	http.SetCookie(w, &http.Cookie{
		Name: proto.SessionHintCookie, Path: "/", MaxAge: -1,
		SameSite: http.SameSiteStrictMode, Secure: a.secure(r),
	})
}

func (a *API) secure(r *http.Request) bool {
	switch a.cfg.SecureCookies {
	case "always":
		return true
	case "never":
		return false
	}
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
