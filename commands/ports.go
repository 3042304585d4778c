// Package commands holds the application's command handlers: each takes a
// request, loads the aggregates it concerns from the event store, lets them
// decide, and appends what they decided. Ports to storage are declared here,
// where they are used, and implemented in adapters.
package commands

import (
	"context"

	"github.com/google/uuid"

	"github.com/clubcrm/crm/domain/customer"
	"github.com/clubcrm/crm/domain/identity"
)

// ResolveRequest is one identity to resolve.
type ResolveRequest struct {
	Tenant string
	Keys   []identity.Key
	Email  string // for fuzzy neighbours: the email domain
	Name   identity.Name
	// CausedBy names the upstream event or command, kept with reservations.
	CausedBy string
}

// Decider chooses the profile for request i given what the index holds,
// and names the keys to reserve for it.
type Decider func(i int, c identity.Candidates) (customer uuid.UUID, reserve []identity.Key)

// IdentityIndex links identifiers to profiles with uniqueness the database
// enforces.
type IdentityIndex interface {
	// Resolve serialises on the requests' keys, looks them up, calls decide
	// for each request in order (later requests see the reservations of
	// earlier ones), and reserves what decide answers, in one transaction.
	// The requests may be of several tenants: a batch of upstream events
	// from many clubs resolves in one transaction, not one per club.
	Resolve(ctx context.Context, reqs []ResolveRequest, decide Decider) error
	// Repoint moves every key of a merged-away profile to its survivor.
	Repoint(ctx context.Context, tenant string, from, to uuid.UUID, causedBy string) error
}

// ProfileSnapshots keeps folded profiles for loading to start from, so
// that only the events after one are read from its stream. A profile it
// answers must be exactly the fold of the first Version events of its
// stream; the pairs (tenants[i], ids[i]) it keeps none of are left out.
type ProfileSnapshots interface {
	ProfileSnapshots(ctx context.Context, tenants []string, ids []uuid.UUID) ([]*customer.Profile, error)
}

// InboxEntry records an upstream event turned into domain events.
type InboxEntry struct {
	Tenant  string
	EventID string
	Type    string
	Stream  string
}

// InboxKey names an upstream event: its id is unique within its tenant.
type InboxKey struct {
	Tenant  string
	EventID string
}

// Inbox remembers which upstream events were already processed.
type Inbox interface {
	// Seen answers, of events, those already processed, with their
	// streams. The events may be of several tenants.
	Seen(ctx context.Context, events []InboxKey) (map[InboxKey]string, error)
	Record(ctx context.Context, entries []InboxEntry) error
}

// SettingsSource answers a tenant's identity settings.
type SettingsSource interface {
	IdentitySettings(ctx context.Context, tenant string) (identity.Settings, error)
}
