package commands_test

import (
	"errors"
	"testing"

	"github.com/clubcrm/crm/commands"
)

// TestDecodeEnvelope: one JSON object of the contract's shape decodes;
// anything else, trailing data after the object included, is refused as
// an invalid envelope (and so goes to the dead-letter stream).
func TestDecodeEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"object", `{"id":"e1","type":"member.created","tenantId":"t1","data":{"memberId":7}}`, true},
		{"spaces around", " \n{\"id\":\"e1\"}\t", true},
		{"trailing data", `{"id":"e1"} {"id":"e2"}`, false},
		{"not an object", `["e1"]`, false},
		{"truncated", `{"id":"e1"`, false},
		{"empty", ``, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := commands.DecodeEnvelope([]byte(tc.in))
			if tc.ok && err != nil {
				t.Fatalf("DecodeEnvelope(%q) = %v, want no error", tc.in, err)
			}
			if !tc.ok && !errors.Is(err, commands.ErrInvalidEnvelope) {
				t.Fatalf("DecodeEnvelope(%q) = %v, want ErrInvalidEnvelope", tc.in, err)
			}
		})
	}
}
