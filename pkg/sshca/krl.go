package sshca

import (
	"encoding/binary"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"
)

// krl is a key revocation list as OpenSSH reads it (PROTOCOL.krl): the revoked
// serials of the host CA's certificates and of the user CA's.
type krl struct {
	host, user []uint64
	made       time.Time // the last revocation: the list's version and date
}

// The KRL format's numbers (OpenSSH's PROTOCOL.krl).
const (
	krlMagic            = 0x5353484b524c0a00 // "SSHKRL\n\0"
	krlFormatVersion    = 1
	krlSectionCerts     = 1
	krlCertSerialList   = 0x20
	krlVersionUnchanged = 0
)

// marshal is the list in OpenSSH's binary format, one certificate section for each
// CA key with revoked serials. Its version and date are the last revocation's time,
// so the same revocations make the same bytes on every box.
func (k krl) marshal(hostCA, userCA ssh.PublicKey) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint64(b, krlMagic)
	b = binary.BigEndian.AppendUint32(b, krlFormatVersion)
	stamp := uint64(krlVersionUnchanged)
	if !k.made.IsZero() {
		stamp = uint64(k.made.Unix())
	}
	b = binary.BigEndian.AppendUint64(b, stamp) // krl_version
	b = binary.BigEndian.AppendUint64(b, stamp) // generated_date
	b = binary.BigEndian.AppendUint64(b, 0)     // flags
	b = appendString(b, nil)                    // reserved
	b = appendString(b, []byte("infrad SSH CA"))
	for _, s := range []struct {
		ca      ssh.PublicKey
		serials []uint64
	}{{hostCA, k.host}, {userCA, k.user}} {
		if len(s.serials) == 0 {
			continue
		}
		serials := slices.Compact(slices.Sorted(slices.Values(s.serials)))
		var list []byte
		for _, n := range serials {
			list = binary.BigEndian.AppendUint64(list, n)
		}
		var section []byte
		section = appendString(section, s.ca.Marshal())
		section = appendString(section, nil) // reserved
		section = append(section, krlCertSerialList)
		section = appendString(section, list)
		b = append(b, krlSectionCerts)
		b = appendString(b, section)
	}
	return b
}

// appendString appends s as the SSH wire format's string: its length, then it.
func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
