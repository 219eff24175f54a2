package mesh

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cortex-mesh/cortex/store"
)

// FuzzDecodeHello: any bytes from a peer are either a checked hello or an
// error; never a panic, never a member record that does not check.
func FuzzDecodeHello(f *testing.F) {
	f.Add([]byte(`{"v":1,"node":"a","time_ms":1700000000000}`))
	f.Add([]byte(`{"v":1,"node":"b","time_ms":1,"members":[{"value":{"node":"b","peer_id":"x","addrs":["127.0.0.1:1"]},"hlc":5,"origin":"b"}]}`))
	f.Add([]byte(`{"v":1,"error":"clock skew"}`))
	f.Add([]byte(`{"v":1,"error":"node c was forgotten","code":"forgotten"}`))
	f.Add([]byte(`{"v":1,"node":"a","time_ms":1,"incarnation":"0123456789abcdef0123456789abcdef"}`))
	f.Add([]byte(`{"v":1,"node":"a","time_ms":1,"incarnation":"../x"}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"node":"a","members":[{"value":{"node":"c"},"hlc":1,"origin":"a"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHello(b)
		if err != nil {
			return
		}
		if h.Error != "" {
			if h.Code != "" && h.Code != codeForgotten {
				t.Fatalf("accepted refusal code %q", h.Code)
			}
			return
		}
		if h.Incarnation != "" && store.ValidateIncarnation(h.Incarnation) != nil {
			t.Fatalf("accepted incarnation %q", h.Incarnation)
		}
		for _, m := range h.Members {
			if _, err := m.member(); err != nil {
				t.Fatalf("accepted a bad member: %v", err)
			}
			if e := m.entry("x"); e.Check() != nil && len(m.Value) > 0 {
				t.Fatalf("member record would not go into the log: %v", e.Check())
			}
		}
	})
}

// FuzzReadFrame: frames are read exactly or refused; the limit holds.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 9, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, err := ReadFrame(bytes.NewReader(b), 64)
		if err != nil {
			return
		}
		if len(payload) > 64 {
			t.Fatalf("frame of %d bytes over the limit", len(payload))
		}
		var buf bytes.Buffer
		if WriteFrame(&buf, payload) != nil || !bytes.Equal(buf.Bytes(), b[:4+len(payload)]) {
			t.Fatal("frame does not round-trip")
		}
	})
}

func TestReadFrameLimit(t *testing.T) {
	_, err := ReadFrame(bytes.NewReader([]byte{0x7f, 0xff, 0xff, 0xff}), 1<<20)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("2 GiB frame: %v", err)
	}
}
