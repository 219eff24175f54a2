package store

import (
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/wal"
)

// FuzzAuthorize feeds arbitrary changes to the rule of who may change the
// system tables: it never panics, and what it allows a member node is only
// ever its own membership record or a table whose id names it as home, with
// a value that passes the checks.
func FuzzAuthorize(f *testing.F) {
	f.Add(0, true, "node/m", `{"node":"m","peer_id":"p","addrs":["127.0.0.1:1"]}`, false)
	f.Add(0, true, "table/t/0123456789abcdef-m", `{"name":"t","id":"0123456789abcdef-m","scope":"all","home":"m"}`, false)
	f.Add(0, false, "table/t/0123456789abcdef-h", ``, false)
	f.Add(0, true, "table/pwn//../../x", `{"name":"pwn","id":"/../../x","scope":"all","home":"m"}`, true)
	f.Add(0, true, "revoked/h", `{"target":"h"}`, true)
	f.Add(0, true, "forgot/h/0123456789abcdef0123456789abcdef", `{"node":"h","incarnation":"0123456789abcdef0123456789abcdef","by":"m","at":"2030-01-01T00:00:00Z"}`, true)
	f.Add(0, true, "horizon/0123456789abcdef-m", `{"table":"0123456789abcdef-m","hlc":5,"by":"m","copies":[{"node":"m","log_id":"l","bound":5,"acks":{}}]}`, false)
	f.Add(1, true, "bob", `{"name":"bob","kind":"client"}`, true)
	f.Add(2, true, "bob/*", `{"identity":"bob","table":"*","perm":"admin"}`, true)
	f.Fuzz(func(t *testing.T, table int, put bool, key, value string, admin bool) {
		names := append(scope.SystemTables, "notes")
		tb := names[(table%len(names)+len(names))%len(names)]
		s := pki.Signer{Name: "m", Role: pki.RoleMember}
		if admin {
			s.Role = pki.RoleAdmin
		}
		e := wal.Entry{Op: wal.OpDelete, Key: []byte(key), Version: wal.Version{HLC: 1, Origin: "m"}}
		if put {
			e.Op, e.Value = wal.OpPut, []byte(value)
		}
		if err := Authorize(tb, &e, s); err != nil || admin {
			return
		}
		switch {
		case tb != scope.MetaTable:
			t.Fatalf("a member may change %s", tb)
		case strings.HasPrefix(key, "node/"):
			if key != "node/m" || !put {
				t.Fatalf("a member may change %q (put %v)", key, put)
			}
			if m, err := DecodeMember(e.Value); err != nil || m.Node != "m" {
				t.Fatalf("accepted a bad membership record: %v", err)
			}
		case strings.HasPrefix(key, "table/"):
			name, id, _ := strings.Cut(strings.TrimPrefix(key, "table/"), "/")
			if home, ok := scope.HomeOf(id); !ok || home != "m" {
				t.Fatalf("a member may change table %q of id %q", name, id)
			}
			if put {
				info, err := parseTableInfo(e.Value)
				if err != nil || info.Name != name || info.ID != id || info.Home != "m" {
					t.Fatalf("accepted a bad catalog record %+v: %v", info, err)
				}
			}
		case strings.HasPrefix(key, "horizon/"):
			if home, ok := scope.HomeOf(strings.TrimPrefix(key, "horizon/")); !ok || home != "m" {
				t.Fatalf("a member may write the horizon %q", key)
			}
			if put {
				if h, err := decodeHorizon(e.Value); err != nil || h.By != "m" {
					t.Fatalf("accepted a bad horizon record %+v: %v", h, err)
				}
			}
		default:
			t.Fatalf("a member may change %q", key)
		}
	})
}

// FuzzDecodeHorizon: a horizon record from a peer decodes to a validated
// record or is refused; never a panic.
func FuzzDecodeHorizon(f *testing.F) {
	f.Add([]byte(`{"table":"0123456789abcdef-a","hlc":5,"by":"a","copies":[{"node":"a","log_id":"l","bound":5,"acks":{"b":1}},{"node":"b","log_id":"m","bound":6,"acks":{"a":2}}]}`))
	f.Add([]byte(`{"table":"0123456789abcdef-a","hlc":5,"by":"a","copies":[{"node":"a","log_id":"l","bound":5,"acks":{}}]}`))
	f.Add([]byte(`{"table":"../x","hlc":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHorizon(b)
		if err != nil {
			return
		}
		if _, ok := scope.HomeOf(h.Table); !ok || h.HLC == 0 || len(h.Copies) == 0 || scope.ValidateNodeName(h.By) != nil {
			t.Fatalf("accepted %+v", h)
		}
		for _, c := range h.Copies {
			if scope.ValidateNodeName(c.Node) != nil || c.Bound < h.HLC || len(c.Acks) != len(h.Copies)-1 {
				t.Fatalf("accepted copy %+v", c)
			}
		}
	})
}

// FuzzDecodeMember: a membership record from a peer decodes to a checked
// record or is refused; never a panic.
func FuzzDecodeMember(f *testing.F) {
	f.Add([]byte(`{"node":"a","peer_id":"p","addrs":["127.0.0.1:7946","[::1]:1"],"draining":["0123456789abcdef-a"]}`))
	f.Add([]byte(`{"node":"a","addrs":["x"]}`))
	f.Add([]byte(`{"node":"../a"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMember(b)
		if err != nil {
			return
		}
		if scope.ValidateNodeName(m.Node) != nil || len(m.Addrs) > maxMemberAddrs || len(m.PeerID) > maxPeerID {
			t.Fatalf("accepted %+v", m)
		}
		for _, a := range m.Addrs {
			if checkAddr(a) != nil {
				t.Fatalf("accepted address %q", a)
			}
		}
	})
}

// FuzzDecodeForgot: a forgot record from a peer decodes to a checked record
// that matches its key, or is refused; never a panic.
func FuzzDecodeForgot(f *testing.F) {
	f.Add("c/0123456789abcdef0123456789abcdef", []byte(`{"node":"c","incarnation":"0123456789abcdef0123456789abcdef","by":"boss","at":"2030-01-01T00:00:00Z","last_seen_ms":5}`))
	f.Add("c/unknown", []byte(`{"node":"c","by":"boss","at":"2030-01-01T00:00:00Z"}`))
	f.Add("c/unknown", []byte(`{"node":"c","incarnation":"unknown","by":"boss","at":"2030-01-01T00:00:00Z"}`))
	f.Add("../c/x", []byte(`{"node":"../c"}`))
	f.Fuzz(func(t *testing.T, rest string, b []byte) {
		fr, err := DecodeForgot(rest, b)
		if err != nil {
			return
		}
		if scope.ValidateNodeName(fr.Node) != nil || scope.ValidateNodeName(fr.By) != nil || fr.At.IsZero() || fr.LastSeen < 0 {
			t.Fatalf("accepted %+v", fr)
		}
		if fr.Incarnation != "" && ValidateIncarnation(fr.Incarnation) != nil {
			t.Fatalf("accepted incarnation %q", fr.Incarnation)
		}
		if string(forgotKey(fr.Node, fr.Incarnation)) != "forgot/"+rest {
			t.Fatalf("record %+v under key forgot/%s", fr, rest)
		}
	})
}
