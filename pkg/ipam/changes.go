package ipam

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/infrad/infrad/pkg/site"
	"github.com/infrad/infrad/pkg/store"
)

// The change log: every command that changed the site, with when, who and what, each
// object it changed as it was before and after. It is written in the command's own
// transaction, from the changes the command made to the model, so it cannot miss one
// or disagree with the store; every box of a cluster writes the same log.

// ChangeEntry is one applied command in the change log.
type ChangeEntry struct {
	ID      uint64         `json:"id,omitempty"` // its key in the log: not in the stored value, which begins with At
	At      time.Time      `json:"at"`
	Source  string         `json:"source"`  // "token alice", "site file", "dhcp", "rfc2136 key ddns.", "acme"
	Command string         `json:"command"` // the command's type: PutHost, CommitLease, ...
	Changes []ObjectChange `json:"changes"`
	More    int            `json:"more,omitempty"` // changes past maxEntryChanges: counted, not listed
}

// ObjectChange is one object a command created, updated or deleted.
type ObjectChange struct {
	Kind   string          `json:"kind"` // subnet, host, record, lease, token, certificate, keyring, settings (the zones' dns)
	Key    string          `json:"key"`  // its name or address; a record's name, type and value
	Op     string          `json:"op"`   // create, update, delete; revoke (a certificate)
	Before json.RawMessage `json:"before,omitempty"`
	After  json.RawMessage `json:"after,omitempty"`
}

// maxEntryChanges bounds the objects one entry lists (a first reconcile of a large
// site file changes them all).
const maxEntryChanges = 100

// sourceOf is who made cmd: its stamp's, or the one its kind implies.
func sourceOf(cmd Command) string {
	if by := cmd.source(); by != "" {
		return by
	}
	switch cmd.(type) {
	case CommitLease, ReleaseLease, ReleaseClientLease, DeclineLease, ExpireLeases, CommitLease6, ReleaseLease6, DeclineLease6:
		return "dhcp"
	case Reconcile:
		return "site file"
	case TableWrite:
		return "acme"
	case UpdateRecords:
		return "rfc2136"
	}
	return "api"
}

// touch notes that the command applying now changes the object at k: the change log
// compares it as it was before the command with what the command leaves.
func (t *txn) touch(k dirtyKey) {
	if t.touched == nil || t.touched[k] {
		return
	}
	t.touched[k] = true
	t.order = append(t.order, k)
}

// touchLease notes that the command applying now changes the lease at ip, which was
// old (nil: none). The lease indexes change in place, so unlike the other objects
// the lease is kept as it was when first touched.
func (t *txn) touchLease(ip netip.Addr, old *Lease) {
	if t.touched == nil {
		return
	}
	if _, seen := t.leasesBefore[ip]; seen {
		return
	}
	if old != nil {
		c := *old
		old = &c
	}
	t.leasesBefore[ip] = old
}

// noteExtra adds to the command's entry a change the model does not hold (a
// certificate the CA issued).
func (t *txn) noteExtra(c ObjectChange) {
	if t.touched != nil {
		t.extra = append(t.extra, c)
	}
}

// logChange makes the change log's entry for cmd, applied, from what it touched: none
// when it changed nothing, or only renewed leases.
func (t *txn) logChange(cmd Command) {
	if t.touched == nil {
		return
	}
	e := ChangeEntry{At: cmd.time().UTC(), Source: sourceOf(cmd), Command: CommandType(cmd)}
	add := func(c ObjectChange) {
		if len(e.Changes) < maxEntryChanges {
			e.Changes = append(e.Changes, c)
		} else {
			e.More++
		}
	}
	for _, k := range t.order {
		kind := kindOf(k.bucket)
		after, has := objectIn(t.m, k)
		var before any
		var had bool
		if k.bucket == store.BucketLeases { // the indexes changed in place: the lease as first touched
			old := t.leasesBefore[netip.MustParseAddr(k.key)]
			before, had = leaseOrNil(old), old != nil
			if l, _ := after.(Lease); had && has && old.MAC == l.MAC && old.Hostname == l.Hostname && old.Declined == l.Declined && old.Released == l.Released {
				continue // a renewal: the same client keeps the address
			}
		} else {
			before, had = objectIn(&t.saved, k)
		}
		if len(e.Changes) == maxEntryChanges && had != has {
			e.More++ // past the list a create or a delete is counted, not encoded
			continue
		}
		key := k.key
		if k.bucket == store.BucketRecords { // its ID says nothing to a reader: name, type and value do
			r, _ := after.(site.Record)
			if !has {
				r, _ = before.(site.Record)
			}
			key = fmt.Sprintf("%s %s %s", r.Name, r.Type, r.Value)
		}
		if c, ok := objectChange(kind, key, before, had, after, has); ok {
			add(c)
		}
	}
	for _, c := range t.extra {
		add(c)
	}
	if len(e.Changes) > 0 {
		t.entries = append(t.entries, e)
	}
}

func leaseOrNil(l *Lease) any {
	if l == nil {
		return nil
	}
	return *l
}

// objectChange is the change from before to after (each present or not); false when
// there is none.
func objectChange(kind, key string, before any, had bool, after any, has bool) (ObjectChange, bool) {
	c := ObjectChange{Kind: kind, Key: key}
	var err error
	if had {
		if c.Before, err = changeJSON(before); err != nil {
			return c, false
		}
	}
	if has {
		if c.After, err = changeJSON(after); err != nil {
			return c, false
		}
	}
	switch {
	case had && has && bytes.Equal(c.Before, c.After), !had && !has:
		return c, false
	case !had:
		c.Op = "create"
	case !has:
		c.Op = "delete"
	default:
		c.Op = "update"
	}
	return c, true
}

// changeJSON is v as the change log shows it: a token without its hash.
func changeJSON(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case Lease:
		return x.AppendJSON(nil) // json.Marshal's, without its reflection and its check
	case Token:
		x.Hash = ""
		v = x
	}
	return json.Marshal(v)
}

func kindOf(b store.Bucket) string {
	switch b {
	case store.BucketSubnets:
		return "subnet"
	case store.BucketHosts:
		return "host"
	case store.BucketRecords:
		return "record"
	case store.BucketLeases:
		return "lease"
	case store.BucketTokens:
		return "token"
	}
	return string(b)
}

// objectIn is the object at k in m, if m has it.
func objectIn(m *Model, k dirtyKey) (any, bool) {
	switch k.bucket {
	case store.BucketSubnets:
		return m.Subnet(k.key)
	case store.BucketHosts:
		return m.hosts.Get(k.key)
	case store.BucketRecords:
		return m.records.Get(k.key)
	case store.BucketLeases:
		return m.Lease(netip.MustParseAddr(k.key))
	case store.BucketTokens:
		return m.tokens.Get(k.key)
	}
	return nil, false
}

// writeChanges appends the batch's entries to the change log, trimming it to the
// shape's bounds after each, measured from that entry's time: every box trims alike,
// however its commands were batched.
func (t *txn) writeChanges(tx *store.Tx) error {
	limits := t.m.shape.Changes.OrDefault()
	for i := range t.entries {
		if _, err := store.Append(tx, store.BucketChanges, &t.entries[i]); err != nil {
			return err
		}
		cutoff := t.entries[i].At.AddDate(0, 0, -limits.Days)
		err := store.Trim(tx, store.BucketChanges, uint64(limits.Entries), func(raw []byte) bool {
			at, ok := entryTime(raw)
			return ok && at.Before(cutoff)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// entryTime reads the time of a stored entry from its first bytes, without decoding
// the rest (an entry may list a hundred objects, and a trim looks at one per write).
func entryTime(raw []byte) (time.Time, bool) {
	rest, ok := bytes.CutPrefix(raw, []byte(`{"at":"`))
	if end := bytes.IndexByte(rest, '"'); ok && end > 0 {
		at, err := time.Parse(time.RFC3339Nano, string(rest[:end]))
		return at, err == nil
	}
	var e struct {
		At time.Time `json:"at"`
	}
	return e.At, json.Unmarshal(raw, &e) == nil
}

// ChangeFilter selects entries of the change log; its zero value selects all.
type ChangeFilter struct {
	Object string    // a word of the object's kind or key ("host", "cp01", "host cp01", "10.0.0.5")
	Source string    // a word of the source ("alice", "dhcp", "site file")
	Since  time.Time // at or after; zero: any
	Until  time.Time // before; zero: any
	Before uint64    // entries numbered below this (the next page); 0: from the newest
	Limit  int       // at most this many; 0: 100
}

// MaxChangePage is the most entries one page of the change log holds.
const MaxChangePage = 1000

// ChangePage is one page of the change log, newest first; Next, when not zero, is
// the Before of the next page.
type ChangePage struct {
	Changes []ChangeEntry `json:"changes"`
	Next    uint64        `json:"next,omitempty"`
}

// Changes reads the change log, newest first.
func (m *IPAM) Changes(ctx context.Context, f ChangeFilter) (ChangePage, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, MaxChangePage)
	page := ChangePage{Changes: []ChangeEntry{}}
	object, source := strings.ToLower(f.Object), strings.ToLower(f.Source)
	var err error
	verr := m.store.View(func(tx *store.Tx) error {
		return store.Newest(tx, store.BucketChanges, f.Before, func(id uint64, raw []byte) bool {
			if ctx.Err() != nil {
				err = ctx.Err()
				return false
			}
			var e ChangeEntry
			if err = json.Unmarshal(raw, &e); err != nil {
				err = fmt.Errorf("change log entry %d: %w", id, err)
				return false
			}
			e.ID = id // its key in the log, which Append chose
			if !f.Since.IsZero() && e.At.Before(f.Since) {
				return false // older still, all of them
			}
			if !f.Until.IsZero() && !e.At.Before(f.Until) {
				return true
			}
			if source != "" && !strings.Contains(strings.ToLower(e.Source), source) {
				return true
			}
			if object != "" && !e.touches(object) {
				return true
			}
			if len(page.Changes) == f.Limit {
				page.Next = page.Changes[len(page.Changes)-1].ID
				return false
			}
			page.Changes = append(page.Changes, e)
			return true
		})
	})
	if verr != nil {
		return page, verr
	}
	return page, err
}

// touches reports whether an object of e matches q, lower case: its kind, its key, or
// "kind key".
func (e *ChangeEntry) touches(q string) bool {
	for _, c := range e.Changes {
		full := strings.ToLower(c.Kind + " " + c.Key)
		if strings.Contains(full, q) {
			return true
		}
	}
	return false
}
