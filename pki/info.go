package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ExpiryWarning is how long before its end a certificate is said to expire
// soon: cortexd warns about its own, its CA's and its peers' certificates,
// and cortex cert list marks them.
const ExpiryWarning = 30 * 24 * time.Hour

// maxCertFile bounds a certificate file read by cortex cert show and list.
const maxCertFile = 1 << 20

// ParseCertPEM parses the first PEM CERTIFICATE block of data. It never
// panics on malformed input.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	if len(data) > maxCertFile {
		return nil, fmt.Errorf("%d bytes is too large for a certificate file", len(data))
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("holds no PEM certificate")
		}
		if block.Type != "CERTIFICATE" {
			continue // a key or parameters in the same file
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("malformed certificate: %w", err)
		}
		return c, nil
	}
}

// Info describes a certificate as cortex cert show and list print it.
type Info struct {
	File        string    `json:"file,omitempty"`
	Name        string    `json:"name"` // the common name (a CA's: the mesh's name if it has one)
	Kind        string    `json:"kind"` // ca, node, client, or unknown
	Role        Role      `json:"role,omitempty"`
	Mesh        string    `json:"mesh,omitempty"` // the mesh's name: a CA's own, or its issuer's
	Serial      string    `json:"serial"`         // hex
	Fingerprint string    `json:"fingerprint"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	DaysLeft    int       `json:"days_left"` // whole days until NotAfter, negative once expired
	Expired     bool      `json:"expired"`
	ExpiresSoon bool      `json:"expires_soon"` // within ExpiryWarning
	Issuer      string    `json:"issuer"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	IPAddresses []string  `json:"ip_addresses,omitempty"`
}

// Describe returns what a certificate is at time now.
func Describe(c *x509.Certificate, now time.Time) Info {
	in := Info{Name: c.Subject.CommonName, Kind: "unknown", Serial: Serial(c), Fingerprint: Fingerprint(c),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), DaysLeft: DaysLeft(c.NotAfter, now),
		Expired: !now.Before(c.NotAfter), ExpiresSoon: ExpiresSoon(c.NotAfter, now),
		Issuer: c.Issuer.String(), DNSNames: c.DNSNames, Mesh: MeshName(c.Issuer)}
	for _, ip := range c.IPAddresses {
		in.IPAddresses = append(in.IPAddresses, ip.String())
	}
	switch kind, err := KindOf(c); {
	case c.IsCA:
		in.Kind, in.Mesh = "ca", MeshName(c.Subject)
	case err == nil:
		in.Kind = string(kind)
		if kind == KindNode {
			in.Role, _ = RoleOf(c) // "" if malformed
		}
	}
	return in
}

// Serial is a certificate's serial number in hex.
func Serial(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}

// DaysLeft is the number of whole days from now until notAfter, negative
// once it has passed (a certificate ending in an hour has 0 days left).
func DaysLeft(notAfter, now time.Time) int {
	d := notAfter.Sub(now)
	return int(math.Floor(d.Hours() / 24))
}

// ExpiresSoon reports whether notAfter is within ExpiryWarning of now (or
// past).
func ExpiresSoon(notAfter, now time.Time) bool { return notAfter.Sub(now) < ExpiryWarning }

// ParseLifetime reads a lifetime: a whole number of years (10y, 365 days
// each), days (90d), or a Go duration (12h, 30m, 1h30m).
func ParseLifetime(s string) (time.Duration, error) {
	unit := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "y"):
		unit = 365 * 24 * time.Hour
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	}
	if unit == 0 {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("lifetime %q: give years (10y), days (90d), hours (12h) or minutes (30m)", s)
		}
		return d, nil
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("lifetime %q: give a whole number of years (10y) or days (90d), or hours (12h) or minutes (30m)", s)
	}
	return time.Duration(n) * unit, nil
}

// FormatLifetime writes a lifetime the way ParseLifetime reads it, in the
// largest unit that divides it.
func FormatLifetime(d time.Duration) string {
	switch day := 24 * time.Hour; {
	case d > 0 && d%(365*day) == 0:
		return strconv.FormatInt(int64(d/(365*day)), 10) + "y"
	case d > 0 && d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}
