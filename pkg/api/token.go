package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/infrad/infrad/pkg/ipam"
)

// TokenFile is the name of the API token's file in the data directory.
const TokenFile = "api-token"

// LoadToken reads the API token from dataDir, creating it (mode 0600) on first start.
// A token file that others can read is tightened to 0600; tightened says so.
func LoadToken(dataDir string) (token string, created, tightened bool, err error) {
	path := filepath.Join(dataDir, TokenFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		token, err = createToken(path)
		return token, err == nil, false, err
	}
	if err != nil {
		return "", false, false, fmt.Errorf("read api token: %w", err)
	}
	token = strings.TrimSpace(string(raw))
	if len(token) < 16 {
		return "", false, false, fmt.Errorf("api token in %s is shorter than 16 characters: delete the file and infrad makes a new one", path)
	}
	info, err := os.Stat(path)
	if err != nil {
		return "", false, false, fmt.Errorf("stat api token: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return "", false, false, fmt.Errorf("tighten api token to 0600: %w", err)
		}
		tightened = true
	}
	return token, false, tightened, nil
}

// RotateToken replaces the token in dataDir's file with a new one, which it returns:
// written to a new file, synced, then renamed over the old, so that a crash leaves
// one or the other. A token with an error is in the file, perhaps not on disk yet.
func RotateToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	tmp := path + ".new"
	os.Remove(tmp)
	token, err := createToken(tmp)
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("replace api token: %w", err)
	}
	// The rename lasts once the directory is synced; it is made either way, so the
	// token is the new one even when the sync fails (said in err).
	dir, err := os.Open(dataDir)
	if err == nil {
		err = dir.Sync()
		dir.Close()
	}
	if err != nil {
		err = fmt.Errorf("sync the data directory after replacing the api token: %w", err)
	}
	return token, err
}

func createToken(path string) (string, error) {
	token := hex.EncodeToString(randomBytes(32))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create api token: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write api token: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("write api token: %w", err)
	}
	return token, f.Close()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return b
}

// requireToken lets a request through only with "Authorization: Bearer <token>": the
// data directory's token (compared in constant time, an admin's) or a named token
// (found by its SHA-256). The request goes on with the token's scope, which the
// routes' need checks, and its name as the source of the changes it makes (the change
// log's "who").
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r)
		if err != nil {
			challenge(w, r)
			s.writeError(w, r, err)
			return
		}
		ctx := context.WithValue(ipam.WithSource(r.Context(), "token "+c.name), tokenKey{}, c)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// challenge says, on a 401, what the client must send (RFC 6750).
func challenge(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="infrad", error="invalid_token"`)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="infrad"`)
}

// authenticate finds who r's bearer token is.
func (s *Server) authenticate(r *http.Request) (caller, error) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return caller{}, errorf(http.StatusUnauthorized, "unauthorized",
			"this route needs the header Authorization: Bearer <token>; the token is in %s in the data directory", TokenFile)
	}
	got = strings.TrimSpace(got)
	if subtle.ConstantTimeCompare([]byte(got), []byte(*s.fileToken.Load())) == 1 {
		return caller{ipam.FileTokenName, ipam.ScopeAdmin}, nil
	}
	tok, ok := s.opts.IPAM.Model().TokenWithHash(hashToken(got))
	if !ok {
		return caller{}, errorf(http.StatusUnauthorized, "unauthorized", "the bearer token is neither this site's API token nor a named token (it may have been revoked)")
	}
	return caller{tok.Name, tok.ScopeOf()}, nil
}

// caller is who a request's token is, and what it may do.
type caller struct {
	name  string
	scope ipam.Scope
}

type tokenKey struct{}

// need refuses (403) a request whose token's scope does not allow scope.
func (s *Server) need(scope ipam.Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, _ := r.Context().Value(tokenKey{}).(caller); !c.scope.Allows(scope) {
				s.writeError(w, r, errorf(http.StatusForbidden, "forbidden", "token %q has the scope %s: %s %s needs %s", c.name, c.scope, r.Method, r.URL.Path, scope))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// byMethod is need by the request's method: reads (GET, HEAD) need read, changes
// need write.
func (s *Server) byMethod(next http.Handler) http.Handler {
	read, write := s.need(ipam.ScopeRead)(next), s.need(ipam.ScopeWrite)(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			read.ServeHTTP(w, r)
			return
		}
		write.ServeHTTP(w, r)
	})
}

// hashToken is how a named token is kept: its SHA-256, in hex. A token is 32 random
// bytes, so a plain hash is enough: there is nothing to guess.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenView is a named token as the API shows it; Token only once, when it is made.
// ReadOnly says the read scope, for clients made before scopes.
type tokenView struct {
	Name     string     `json:"name"`
	Scope    ipam.Scope `json:"scope"`
	ReadOnly bool       `json:"read_only"`
	Created  time.Time  `json:"created"`
	Token    string     `json:"token,omitempty"`
	// SSHPrincipals are the principals its SSH user certificates may name.
	SSHPrincipals []string `json:"ssh_principals,omitempty"`
}

func viewOf(t ipam.Token) tokenView {
	return tokenView{Name: t.Name, Scope: t.ScopeOf(), ReadOnly: t.ScopeOf() == ipam.ScopeRead, Created: t.Created, SSHPrincipals: t.SSHPrincipals}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	views := []tokenView{{Name: ipam.FileTokenName, Scope: ipam.ScopeAdmin}} // every box has its own file's
	for _, t := range s.opts.IPAM.Model().Tokens() {
		views = append(views, viewOf(t))
	}
	return reply(w, http.StatusOK, views, nil)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Name     string     `json:"name"`
		Scope    ipam.Scope `json:"scope"`
		ReadOnly bool       `json:"read_only"` // the read scope, as clients before scopes asked for it

		SSHPrincipals []string `json:"ssh_principals"`
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	switch {
	case body.ReadOnly && body.Scope != "" && body.Scope != ipam.ScopeRead:
		return errorf(http.StatusBadRequest, "invalid", "read_only is the read scope: give one of read_only and scope")
	case body.ReadOnly:
		body.Scope = ipam.ScopeRead
	case body.Scope == "":
		body.Scope = ipam.ScopeWrite // the least that changes the site; admin is asked for by name
	}
	secret := "infrad_" + hex.EncodeToString(randomBytes(32))
	tok, err := s.opts.IPAM.CreateToken(r.Context(), ipam.Token{Name: body.Name, Hash: hashToken(secret), Scope: body.Scope, SSHPrincipals: body.SSHPrincipals})
	if err != nil {
		return err
	}
	v := viewOf(tok)
	v.Token = secret
	return reply(w, http.StatusCreated, v, nil)
}

// rotateFileToken gives this box's data-directory token a new value, at once: the old
// one, and the sign-in link logged with it, stop working. Other boxes keep theirs.
func (s *Server) rotateFileToken(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength != 0 { // no body, or an empty object
		if err := decode(w, r, &struct{}{}); err != nil {
			return err
		}
	}
	if s.opts.DataDir == "" {
		return errorf(http.StatusConflict, "conflict", "this server has no data directory to keep a token in")
	}
	s.rotating.Lock()
	defer s.rotating.Unlock()
	token, err := RotateToken(s.opts.DataDir)
	if token == "" {
		return err
	}
	s.fileToken.Store(&token)
	if err != nil {
		s.log.Warn("the api token was rotated, and may not survive a crash", "err", err)
	}
	s.log.Info("the data directory's api token was rotated", "by", ipam.SourceOf(r.Context()))
	return reply(w, http.StatusOK, tokenView{Name: ipam.FileTokenName, Token: token}, nil)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "name")
	if name == ipam.FileTokenName {
		return errorf(http.StatusConflict, "conflict", "%q is the token in each box's data directory, not a named token: rotate it (POST /api/v1/tokens/%s/rotate, or infrad token rotate) instead", name, name)
	}
	return noContent(w, s.opts.IPAM.RevokeToken(r.Context(), name))
}
