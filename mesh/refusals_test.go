package mesh

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cortex-mesh/cortex/pki"
)

func TestRefusalReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("tls handshake: %w", &reasonError{pki.ErrForeignCA, "x"}), "foreign_ca"},
		{fmt.Errorf("tls handshake: %w", &reasonError{pki.ErrExpired, "x"}), "expired"},
		{&reasonError{pki.ErrWrongKind, "x"}, "wrong_kind"},
		{&reasonError{ErrRevoked, "x"}, "revoked"},
		{skewError(2 * MaxRefusedSkew), "clock_skew"},
		{fmt.Errorf("%w or closed the connection: %w", ErrRefusedByPeer, errors.New("EOF")), "refused_by_peer"},
		{&reasonError{ErrForgotten, "node c was forgotten"}, "forgotten"},
		{errors.New("tls: invalid signature"), "other"},
		{nil, "other"},
	} {
		got := RefusalReason(c.err)
		if got != c.want {
			t.Errorf("RefusalReason(%v) = %q, want %q", c.err, got, c.want)
		}
		if !slices.Contains(RefusalReasons, got) {
			t.Errorf("%q is not in RefusalReasons", got)
		}
	}
	if skewError(MaxRefusedSkew) != nil {
		t.Error("a skew at the limit is refused")
	}
}
