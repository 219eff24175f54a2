package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frames on mesh streams: a 4-byte big-endian length, then that many bytes.
// A frame over the reader's limit is refused before anything is read.

// ErrFrameTooLarge is returned for a frame longer than the limit.
var ErrFrameTooLarge = errors.New("frame too large")

// WriteFrame writes one frame, in one Write.
func WriteFrame(w io.Writer, payload []byte) error {
	b := make([]byte, 4, 4+len(payload))
	binary.BigEndian.PutUint32(b, uint32(len(payload)))
	_, err := w.Write(append(b, payload...))
	return err
}

// ReadFrame reads one frame of at most limit bytes.
func ReadFrame(r io.Reader, limit int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, n, limit)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("truncated frame: %w", err)
	}
	return buf, nil
}
