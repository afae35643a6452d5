package ca

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/smallstep/certificates/acme"
)

// provisionerID is the ACME provisioner's ID, under which its EAB keys are kept.
const provisionerID = "acme"

// EABKey is an external account binding key (RFC 8555 §7.3.4): an ACME client that
// shows it (its ID, and a MAC by its secret) may make an account, once. The secret
// is given only when the key is made.
type EABKey struct {
	ID        string    `json:"key_id"`
	Reference string    `json:"reference"` // who it is for: the named token that made it, or the name given
	HMAC      string    `json:"hmac_key,omitempty"`
	Created   time.Time `json:"created"`
	Account   string    `json:"account,omitempty"` // the ACME account it was bound to; "": none yet
	Bound     time.Time `json:"bound,omitzero"`
}

// CreateEAB makes an EAB key for reference, and gives its secret, base64url without
// padding, as lego's --hmac and cert-manager's Secret take it.
func (s *Service) CreateEAB(ctx context.Context, reference string) (EABKey, error) {
	db, err := s.acmeDB()
	if err != nil {
		return EABKey{}, err
	}
	k, err := db.CreateExternalAccountKey(ctx, provisionerID, reference)
	if err != nil {
		return EABKey{}, fmt.Errorf("make an EAB key: %w", err)
	}
	v := viewOfEAB(k)
	v.HMAC = base64.RawURLEncoding.EncodeToString(k.HmacKey)
	return v, nil
}

// EABKeys are the EAB keys, without their secrets.
func (s *Service) EABKeys(ctx context.Context) ([]EABKey, error) {
	db, err := s.acmeDB()
	if err != nil {
		return nil, err
	}
	keys, _, err := db.GetExternalAccountKeys(ctx, provisionerID, "", 0)
	if err != nil {
		return nil, fmt.Errorf("read the EAB keys: %w", err)
	}
	out := make([]EABKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, viewOfEAB(k))
	}
	return out, nil
}

// DeleteEAB deletes an EAB key: an account it bound stays.
func (s *Service) DeleteEAB(ctx context.Context, id string) error {
	db, err := s.acmeDB()
	if err != nil {
		return err
	}
	return db.DeleteExternalAccountKey(ctx, provisionerID, id)
}

func (s *Service) acmeDB() (acme.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acme == nil {
		return nil, ErrNotStarted
	}
	return s.acme, nil
}

func viewOfEAB(k *acme.ExternalAccountKey) EABKey {
	return EABKey{ID: k.ID, Reference: k.Reference, Created: k.CreatedAt, Account: k.AccountID, Bound: k.BoundAt}
}
