package api

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/store"
)

// Remote returns the handler of the mTLS listener. Before a request reaches
// the API, the identity named by its verified client certificate must be
// registered (cortex identity add) as a client, and if it is pinned to a
// certificate (identity add --cert) the connection must have presented that
// one; otherwise the request is denied (403, code "denied"). The ACLs are
// then checked per call as on any request with an identity. A request
// without a verified certificate is denied too: on this listener it must
// never be taken for the local administrator.
//
// The registry and the revocation list are read on every request, so
// removing an identity, re-pinning or revoking it takes effect on the next
// request, even on open connections.
func (s *Server) Remote() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			writeError(w, &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: "no verified client certificate: remote calls need a mesh client certificate"})
			return
		}
		if err := s.admit(r.TLS.VerifiedChains[0][0]); err != nil {
			writeError(w, err)
			return
		}
		s.ServeHTTP(w, r)
	})
}

// admit checks a verified client certificate against the identity registry.
func (s *Server) admit(cert *x509.Certificate) error {
	name := cert.Subject.CommonName
	id, err := s.store.Identity(name)
	if errors.Is(err, store.ErrNoIdentity) {
		return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: fmt.Sprintf("%s is not a registered identity (an admin registers it with: cortex identity add %s)", name, name)}
	}
	if err != nil {
		return err
	}
	if s.store.Revoked(name, pki.Fingerprint(cert)) {
		return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: fmt.Sprintf("the certificate of %s is revoked (cortex node revoke)", name)}
	}
	if id.Kind != string(pki.KindClient) {
		return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: fmt.Sprintf("%s is registered as a %s identity; remote calls need a client identity (cortex identity add %s --kind client)", name, id.Kind, name)}
	}
	if fp := pki.Fingerprint(cert); id.Fingerprint != "" && id.Fingerprint != fp {
		return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: fmt.Sprintf("%s is pinned to certificate %s, not to the one presented (%s); an admin can pin the new one with: cortex identity add %s --cert FILE",
			name, id.Fingerprint, fp, name)}
	}
	return nil
}
