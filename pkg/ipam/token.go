package ipam

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// Token is a named API token, as the store keeps it: its SHA-256, never the token.
// Tokens are part of the site (replicated like hosts), so every box knows them.
type Token struct {
	Name  string `json:"name"`
	Hash  string `json:"hash,omitempty"` // hex SHA-256 of the token (never empty in the store)
	Scope Scope  `json:"scope,omitempty"`
	// ReadOnly is set with the read scope, for builds before scopes, which know only it.
	ReadOnly bool      `json:"read_only,omitempty"`
	Created  time.Time `json:"created"`
	// SSHPrincipals are the principals its user certificates may name.
	SSHPrincipals []string `json:"ssh_principals,omitempty"`
}

// Scope is what a token may do. Each allows what the one before it does.
type Scope string

const (
	// ScopeRead reads the site: its objects, leases, status, the change log.
	ScopeRead Scope = "read"
	// ScopeWrite also changes the site's objects and leases.
	ScopeWrite Scope = "write"
	// ScopeAdmin also does what reveals key material or controls who gets in:
	// backups (which hold the key rings: NTS's cookie keys, DNSSEC's private keys),
	// tokens, the cluster's membership. The data directory's own token is an admin's.
	ScopeAdmin Scope = "admin"
)

// Scopes are the scopes, least first.
var Scopes = []Scope{ScopeRead, ScopeWrite, ScopeAdmin}

// Allows reports whether a token of scope s may do what needs scope need.
func (s Scope) Allows(need Scope) bool {
	return slices.Index(Scopes, s) >= slices.Index(Scopes, need) && slices.Contains(Scopes, need)
}

// ScopeOf is what t may do. A token made before scopes has none: read-only, it reads;
// else it keeps the power it had then, an admin's.
func (t Token) ScopeOf() Scope {
	switch {
	case t.Scope != "":
		return t.Scope
	case t.ReadOnly:
		return ScopeRead
	}
	return ScopeAdmin
}

// FileTokenName names the token of the data directory's api-token file, which every
// box has of its own: it may not be a named token's name.
const FileTokenName = "api-token"

var tokenName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

// CheckTokenName says what is wrong with name as a token's name.
func CheckTokenName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("a token needs a name (who or what uses it: alice, ci, external-dns)")
	case !tokenName.MatchString(name):
		return fmt.Errorf("%q is not a token name: 1 to 64 of a-z, 0-9, '.', '_' and '-', beginning and ending with a letter or digit", name)
	case name == FileTokenName:
		return fmt.Errorf("%q names the token of the data directory's file: choose another name", name)
	}
	return nil
}

// PutToken creates a named token.
type PutToken struct {
	Stamp
	Token Token `json:"token"`
}

func (c PutToken) apply(t *txn) (any, error) {
	if err := CheckTokenName(c.Token.Name); err != nil {
		return nil, invalid("name", err.Error())
	}
	if _, exists := t.m.tokens.Get(c.Token.Name); exists {
		return nil, &Error{Kind: ErrConflict, Field: "name", Msg: fmt.Sprintf("token %q exists already: revoke it first, or choose another name", c.Token.Name)}
	}
	if len(c.Token.Hash) != 64 {
		return nil, invalid("hash", "a token's hash is 64 hex digits of SHA-256")
	}
	if c.Token.Scope != "" && !slices.Contains(Scopes, c.Token.Scope) {
		return nil, invalid("scope", fmt.Sprintf("%q is not a scope: read, write or admin", c.Token.Scope))
	}
	for i, p := range c.Token.SSHPrincipals {
		if err := site.CheckSSHPrincipal(p); err != nil {
			return nil, invalid(fmt.Sprintf("ssh_principals[%d]", i), err.Error())
		}
	}
	if c.Token.Scope != "" {
		c.Token.ReadOnly = c.Token.Scope == ScopeRead
	}
	t.putToken(c.Token)
	return c.Token, nil
}

// DeleteToken revokes a named token: the next request with it is refused.
type DeleteToken struct {
	Stamp
	Name string `json:"name"`
}

func (c DeleteToken) apply(t *txn) (any, error) {
	if _, ok := t.m.tokens.Get(c.Name); !ok {
		return nil, notFound(fmt.Sprintf("token %q", c.Name))
	}
	t.deleteToken(c.Name)
	return nil, nil
}

func (t *txn) putToken(tok Token) {
	t.m.tokens = t.m.tokens.Set(tok.Name, tok)
	t.m.tokenByHash = t.m.tokenByHash.Set(tok.Hash, tok.Name)
	t.mark(store.BucketTokens, tok.Name)
}

func (t *txn) deleteToken(name string) {
	tok, _ := t.m.tokens.Get(name)
	t.m.tokens = t.m.tokens.Delete(name)
	t.m.tokenByHash = t.m.tokenByHash.Delete(tok.Hash)
	t.mark(store.BucketTokens, name)
}

// Tokens returns the named tokens, by name.
func (m *Model) Tokens() []Token { return values(m.tokens) }

// Token returns the named token called name.
func (m *Model) Token(name string) (Token, bool) { return m.tokens.Get(name) }

// TokenWithHash returns the token whose SHA-256 is hash (hex).
func (m *Model) TokenWithHash(hash string) (Token, bool) {
	name, ok := m.tokenByHash.Get(hash)
	if !ok {
		return Token{}, false
	}
	return m.tokens.Get(name)
}

// CreateToken makes a named token with the given hash, by who.
func (m *IPAM) CreateToken(ctx context.Context, tok Token) (Token, error) {
	tok.Created = m.now().UTC().Truncate(time.Second)
	return result[Token](m.Apply(ctx, PutToken{Stamp: m.stampFor(ctx), Token: tok}))
}

// RevokeToken deletes the named token.
func (m *IPAM) RevokeToken(ctx context.Context, name string) error {
	_, err := m.Apply(ctx, DeleteToken{Stamp: m.stampFor(ctx), Name: name})
	return err
}
