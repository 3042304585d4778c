package customer

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRecordedParsesOnce: a decoded Recorded parses its data once for all
// its readers; one made by hand parses at every call, to the same value.
func TestRecordedParsesOnce(t *testing.T) {
	rec := Recorded{Upstream: Upstream{ID: "u1", Type: "member.updated", Source: "scl", OccurredAt: time.Now().UTC()},
		Data: json.RawMessage(`{"memberId": 42, "membershipTier": "GOLD"}`)}
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	v, err := Decode("member.updated", b)
	require.NoError(t, err)
	decoded := v.(*Recorded)

	first, err := decoded.Parse()
	require.NoError(t, err)
	second, err := decoded.Parse()
	require.NoError(t, err)
	assert.Same(t, first, second, "a decoded event parses once")
	assert.Equal(t, "GOLD", first.(*Member).MembershipTier)

	byHand, err := rec.Parse()
	require.NoError(t, err)
	again, err := rec.Parse()
	require.NoError(t, err)
	assert.NotSame(t, byHand, again)
	assert.Equal(t, first, byHand)

	bad := &Recorded{Upstream: Upstream{Type: "member.updated"}, Data: json.RawMessage(`{"memberId": "x"}`), parsed: &parsedData{}}
	_, err1 := bad.Parse()
	_, err2 := bad.Parse()
	assert.Error(t, err1)
	assert.Equal(t, err1, err2, "an error is kept as well")
}
