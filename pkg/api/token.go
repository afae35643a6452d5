package api

import (
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
// data directory's token (compared in constant time) or a named token (found by its
// SHA-256). A read-only token may only read (403 otherwise). The request goes on with
// the token's name as the source of the changes it makes (the change log's "who").
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="infrad"`)
			s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthorized",
				"this route needs the header Authorization: Bearer <token>; the token is in %s in the data directory", TokenFile))
			return
		}
		got = strings.TrimSpace(got)
		name, readOnly := ipam.FileTokenName, false
		if subtle.ConstantTimeCompare([]byte(got), []byte(*s.fileToken.Load())) != 1 {
			tok, ok := s.opts.IPAM.Model().TokenWithHash(hashToken(got))
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="infrad", error="invalid_token"`)
				s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthorized", "the bearer token is neither this site's API token nor a named token (it may have been revoked)"))
				return
			}
			name, readOnly = tok.Name, tok.ReadOnly
		}
		if readOnly && r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.writeError(w, r, errorf(http.StatusForbidden, "forbidden", "token %q is read-only: %s needs a token that may write", name, r.Method))
			return
		}
		next.ServeHTTP(w, r.WithContext(ipam.WithSource(r.Context(), "token "+name)))
	})
}

// hashToken is how a named token is kept: its SHA-256, in hex. A token is 32 random
// bytes, so a plain hash is enough: there is nothing to guess.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenView is a named token as the API shows it; Token only once, when it is made.
type tokenView struct {
	Name     string    `json:"name"`
	ReadOnly bool      `json:"read_only"`
	Created  time.Time `json:"created"`
	Token    string    `json:"token,omitempty"`
}

func viewOf(t ipam.Token) tokenView {
	return tokenView{Name: t.Name, ReadOnly: t.ReadOnly, Created: t.Created}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	views := []tokenView{{Name: ipam.FileTokenName}} // every box has its own file's
	for _, t := range s.opts.IPAM.Model().Tokens() {
		views = append(views, viewOf(t))
	}
	return reply(w, http.StatusOK, views, nil)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Name     string `json:"name"`
		ReadOnly bool   `json:"read_only"`
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	secret := "infrad_" + hex.EncodeToString(randomBytes(32))
	tok, err := s.opts.IPAM.CreateToken(r.Context(), ipam.Token{Name: body.Name, Hash: hashToken(secret), ReadOnly: body.ReadOnly})
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
