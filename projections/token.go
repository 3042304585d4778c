package projections

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/clubcrm/crm/eventstore"
)

// ErrBadToken is wrapped by DecodeToken's errors.
var ErrBadToken = errors.New("malformed consistency token")

// tokenVersion leads every token so the format can change compatibly.
const tokenVersion = 1

// EncodeToken answers pos as an opaque, URL-safe string that a command's
// HTTP response can hand to the client and the client can send back with
// its next query (for example in a header), to read its own writes.
func EncodeToken(pos eventstore.Position) string {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64)
	b = append(b, tokenVersion)
	b = binary.AppendUvarint(b, pos.Commit)
	b = binary.AppendUvarint(b, pos.Prepare)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeToken parses a token made by EncodeToken. The empty string decodes
// to the start of the log, which every projector has passed, so a request
// without a token waits for nothing.
func DecodeToken(s string) (eventstore.Position, error) {
	if s == "" {
		return eventstore.Start, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if len(b) == 0 || b[0] != tokenVersion {
		return eventstore.Position{}, fmt.Errorf("%w: unknown version", ErrBadToken)
	}
	b = b[1:]
	var p eventstore.Position
	var n int
	if p.Commit, n = binary.Uvarint(b); n <= 0 {
		return eventstore.Position{}, fmt.Errorf("%w: commit position", ErrBadToken)
	}
	b = b[n:]
	if p.Prepare, n = binary.Uvarint(b); n <= 0 {
		return eventstore.Position{}, fmt.Errorf("%w: prepare position", ErrBadToken)
	}
	if len(b) != n {
		return eventstore.Position{}, fmt.Errorf("%w: trailing bytes", ErrBadToken)
	}
	return p, nil
}
