package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cortex-mesh/cortex/pki"
)

// SIGHUP reloads the node's certificate files (--mesh-cert, --mesh-key)
// without dropping the mesh, as Nebula does: new mesh and RPC connections
// present the new certificate, the connections up stay up, and the node
// signs its system-table changes with it. A reload that fails keeps the
// certificate in use and logs why. SIGHUP never stops cortexd (closing the
// terminal of `cortexd &` sends it); SIGTERM and SIGINT do.

// notifyReload makes SIGHUP, from now on, a request to reload.
func notifyReload() <-chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c
}

// reloader replaces the node's certificate with what its files hold.
type reloader struct {
	certFile, keyFile string
	roots             *x509.CertPool // the mesh CA, as loaded at start
	cur               *pki.Current
	store             interface{ SetIdentity(*pki.Identity) error }
	after             func() // run after a reload took effect (warn of a near end)
	log               *slog.Logger
	now               func() time.Time
}

// reload loads the certificate files and, if pki.CheckRenewal accepts
// them, puts them in place: first in the store (what the node signs with),
// then in Current (what new connections present). On an error nothing
// changed. changed is false if the files hold the certificate in use.
func (r *reloader) reload() (changed bool, err error) {
	next, err := pki.LoadIdentity(r.certFile, r.keyFile, pki.KindNode)
	if err != nil {
		return false, err
	}
	cur := r.cur.Get()
	if next.Leaf.Equal(cur.Leaf) {
		return false, nil
	}
	if err := pki.CheckRenewal(cur, next, r.roots, r.now()); err != nil {
		return false, fmt.Errorf("%s: %w", r.certFile, err)
	}
	if err := r.store.SetIdentity(next); err != nil {
		return false, err
	}
	r.cur.Set(next)
	return true, nil
}

// handle runs one reload and logs how it went.
func (r *reloader) handle() {
	old := r.cur.Get().Leaf
	changed, err := r.reload()
	switch {
	case err != nil:
		r.log.Error("certificate reload failed: keeping the certificate in use", "reason", err.Error(),
			"serial", pki.Serial(old), "not_after", old.NotAfter.UTC().Format(time.RFC3339))
	case !changed:
		r.log.Info("certificate reload: the files hold the certificate in use, nothing changed", "file", r.certFile, "serial", pki.Serial(old))
	default:
		c := r.cur.Get().Leaf
		r.log.Info("certificate reloaded: new connections present it, connections up keep theirs", "file", r.certFile,
			"serial", pki.Serial(c), "not_after", c.NotAfter.UTC().Format(time.RFC3339), "days_left", pki.DaysLeft(c.NotAfter, r.now()),
			"fingerprint", pki.Fingerprint(c), "previous_serial", pki.Serial(old))
		if r.after != nil {
			r.after()
		}
	}
}

// startReloads handles the SIGHUPs on hup until stop is called: a reload
// each, or (r nil: a node without certificates) a line saying there is
// nothing to reload.
func startReloads(hup <-chan os.Signal, r *reloader, log *slog.Logger) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			case <-hup:
				if r == nil {
					log.Info("SIGHUP: nothing to reload: this node runs without certificates (standalone); SIGTERM stops it")
					continue
				}
				r.handle()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-exited
		})
	}
}
