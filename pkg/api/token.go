package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// requireToken lets a request through only with "Authorization: Bearer <token>",
// compared in constant time.
func (s *Server) requireToken(next http.Handler) http.Handler {
	want := []byte(s.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="infrad"`)
			s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthorized",
				"this route needs the header Authorization: Bearer <token>; the token is in %s in the data directory", TokenFile))
			return
		}
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="infrad", error="invalid_token"`)
			s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthorized", "the bearer token is not this site's API token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
