package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/infrad/infrad/pkg/store"
)

// View is everything the network services derive their answers from, read in one
// transaction: the Set and the DHCP leases.
type View struct {
	Set
	Leases []Lease
}

// View reads every object and lease at one revision.
func (m *IPAM) View() (View, error) {
	var v View
	err := m.store.View(func(tx *store.Tx) error {
		var err error
		if v.Set, err = m.load(tx); err != nil {
			return err
		}
		v.Leases, err = store.All[Lease](tx, store.BucketLeases)
		return err
	})
	return v, err
}

// NamedView is View with only the leases that carry a hostname, read from their index
// (IP and hostname alone): what DNS serves, without reading every lease DHCP holds.
func (m *IPAM) NamedView() (View, error) {
	var v View
	err := m.store.View(func(tx *store.Tx) error {
		var err error
		if v.Set, err = m.load(tx); err != nil {
			return err
		}
		return store.Each(tx, store.BucketLeaseNames, func(hostname, ip string) error {
			if a, err := netip.ParseAddr(ip); err == nil {
				v.Leases = append(v.Leases, Lease{IP: a, Hostname: hostname})
			}
			return nil
		})
	})
	return v, err
}

// PutLease writes l in place of prev (zero: none) at l's address, keeping the index
// of hostnames true. The DHCP service is its one caller.
func PutLease(tx *store.Tx, prev, l Lease) error {
	if prev.Hostname != "" && prev.Hostname != l.Hostname {
		if err := unname(tx, prev); err != nil {
			return err
		}
	}
	if l.Hostname != "" {
		if err := store.PutRaw(tx, store.BucketLeaseNames, l.Hostname, l.IP.String()); err != nil {
			return err
		}
	}
	return store.Put(tx, store.BucketLeases, l.IP.String(), l)
}

// DeleteLease removes l, and its hostname from the index.
func DeleteLease(tx *store.Tx, l Lease) error {
	if err := unname(tx, l); err != nil {
		return err
	}
	return store.Delete(tx, store.BucketLeases, l.IP.String())
}

// unname drops l's hostname from the index, if it still points at l.
func unname(tx *store.Tx, l Lease) error {
	if l.Hostname == "" {
		return nil
	}
	ip, ok, err := store.GetRaw(tx, store.BucketLeaseNames, l.Hostname)
	if err != nil || !ok || ip != l.IP.String() {
		return err
	}
	return store.Delete(tx, store.BucketLeaseNames, l.Hostname)
}

// Objects reads the Set alone, without the leases.
func (m *IPAM) Objects() (Set, error) {
	var set Set
	err := m.store.View(func(tx *store.Tx) error {
		var err error
		set, err = m.load(tx)
		return err
	})
	return set, err
}

// Follow calls rebuild after every change of the store that writes one of buckets,
// until ctx ends. It gathers changes for at least coalesce, and for four times as long
// as the last rebuild took, so that a storm of changes costs a follower at most a fifth
// of a core; changes to other buckets (a DHCP storm's leases) cost it nothing.
func (m *IPAM) Follow(ctx context.Context, coalesce time.Duration, buckets []store.Bucket, rebuild func()) {
	wait := coalesce
	var seen uint64
	for {
		_, changed := m.store.Watch()
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		rev, _ := m.store.Watch()
		written := m.store.WrittenSince(seen, buckets...)
		seen = rev
		if !written {
			continue
		}
		start := time.Now()
		rebuild()
		wait = max(coalesce, 4*time.Since(start))
	}
}

// RecordChange is one change an RFC 2136 update asks for: an addition, or a deletion
// of the records at Name that match Type and Value (empty: any).
type RecordChange struct {
	Add   bool
	Name  Name
	Type  string // "" deletes every type (delete only)
	Value string // RDATA in presentation form; "" deletes every value (delete only)
	TTL   uint32
}

// ChangeRecords applies changes in order, as one transaction: all or none. Added
// records are the API's; a deletion that matches a record of the site file, or a
// change at a host's name, refuses the whole update. Deleting what is not there is
// not an error (RFC 2136 §3.4.2).
func (m *IPAM) ChangeRecords(changes []RecordChange) error {
	m.mu.RLock()
	domain := m.domain
	m.mu.RUnlock()
	return m.store.Update(func(tx *store.Tx) error {
		set, err := m.load(tx)
		if err != nil {
			return err
		}
		leases, err := store.All[Lease](tx, store.BucketLeases)
		if err != nil {
			return err
		}
		for _, c := range changes {
			if owner := derivedOwner(set, leases, c.Name); owner != "" {
				return &Error{Kind: ErrConflict, Msg: fmt.Sprintf("%s belongs to %s: its records follow from it, and updates cannot change them", c.Name, owner)}
			}
			if !c.Add {
				if set, err = deleteRecords(tx, set, c); err != nil {
					return err
				}
				continue
			}
			rec, err := ParseRecord(c.Name, c.Type, c.Value, c.TTL, domain)
			if err != nil {
				return invalid("", err.Error())
			}
			rec.Owner = OwnerAPI
			if old, exists := find(recordKind, &set, rec.ID()); exists {
				if old.Owner == OwnerFile || old.TTL == rec.TTL {
					continue // already there, as RFC 2136 §3.4.2.2 allows
				}
				if err := replace(tx, set, recordKind, rec.ID(), &rec); err != nil {
					return err
				}
			} else if err := replace(tx, set, recordKind, "", &rec); err != nil {
				return err
			}
			if set, err = m.load(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

// derivedOwner names the host or lease whose records live at name, or returns "".
func derivedOwner(set Set, leases []Lease, name Name) string {
	for _, h := range set.Hosts {
		if Name(h.Name+"."+string(set.Domain)) == name {
			return fmt.Sprintf("host %q", h.Name)
		}
	}
	for _, l := range leases {
		if l.Hostname != "" && Name(l.Hostname+"."+string(set.Domain)) == name {
			return fmt.Sprintf("the DHCP lease of %s", l.IP)
		}
	}
	return ""
}

// deleteRecords removes the API-owned records c matches from tx and set.
func deleteRecords(tx *store.Tx, set Set, c RecordChange) (Set, error) {
	var keep []Record
	for _, r := range set.Records {
		match := r.Name == c.Name && (c.Type == "" || r.Type == c.Type) && (c.Value == "" || r.Value == c.Value)
		if !match {
			keep = append(keep, r)
			continue
		}
		if r.Owner == OwnerFile {
			return set, &Error{Kind: ErrOwnedByFile, Msg: recordKind.title(r) + " is owned by the site file"}
		}
		if err := store.Delete(tx, store.BucketRecords, r.ID()); err != nil {
			return set, err
		}
	}
	set.Records = slices.Clip(keep)
	return set, nil
}
