// Package projections runs projectors: each follows the global event log and
// keeps PostgreSQL read-model tables up to date.
//
// Checkpoints. A projector applies events in batches, one transaction per
// batch. The transaction first locks the projector's row in
// projection_checkpoints and checks it still holds the position the batch
// starts from, then lets the projector write its tables, then moves the
// checkpoint: the read model and its checkpoint commit together, so a crash
// at any point leaves a read model that holds every event up to its
// checkpoint and none after it. The check makes the row a fence: a writer
// that lost its leadership without noticing, or a rebuild that swapped the
// tables, cannot have a batch applied twice.
//
// Leadership. Several processes may run the same projectors. Each projector
// runs in one process at a time: the one whose elector connection holds the
// projector's PostgreSQL session advisory lock. Electors try the locks they
// lack every second, so when a leader dies (its connection drops and the
// server frees its locks) another process takes over within about a second.
// An elector that loses its connection stops its projectors at once.
//
// Rebuilds. Rebuild replays the whole log into shadow tables (<table>_rebuild,
// created LIKE the live ones) while the live projector keeps serving, then
// swaps them in within one transaction that holds the checkpoint row: it
// applies the last events, renames the tables, drops the old ones and moves
// the checkpoint, so readers see either the old read model or the new one.
// Indexes a projector defers (IndexDeferrer) are built on the shadow tables
// once they are filled, before the swap. A rebuild fills the shadow tables
// with several workers at once, each applying the events of its share of the
// tenants in transactions of its own; its position moves only past batches
// every worker has committed. A projector whose rows each fold one stream
// (StreamFolder) is first rebuilt stream by stream where the store can read
// that way, each row written once, then in log order from where that read
// ended.
package projections

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"

	"github.com/clubcrm/crm/eventstore"
)

// Projector builds one read model from events.
type Projector interface {
	// Name identifies the projector and its checkpoint; it must stay the
	// same across releases, or the projector starts again from scratch.
	Name() string
	// Tables lists the read-model tables the projector owns and writes,
	// by their names in the database. Only they are rebuilt.
	Tables() []string
	// Filter selects the events Apply receives.
	Filter() eventstore.Filter
	// Apply writes the effects of events, which all pass Filter and come in
	// log order, into tables within tx. It must use tables to name what it
	// writes, since a rebuild points them at shadow tables, and must not
	// commit or roll back tx. An error rolls the whole batch back; it is
	// then retried.
	//
	// During a rebuild Apply is called concurrently, in separate
	// transactions, for events of different tenants (each tenant's events
	// still in log order, in one call at a time): it must write only the
	// rows of its events' tenants and keep no state of its own between
	// calls.
	Apply(ctx context.Context, tx pgx.Tx, tables Tables, events []eventstore.Event) error
}

// Follower is a projector that reads other projectors' read models while it
// applies events (segment membership reads the profiles, metrics, scores
// and timeline). Before each batch's transaction begins, the runtime waits
// until every projector After names has applied the batch's events, so
// Apply sees the read models at least as new as the events it handles. The
// wait happens outside any transaction: holding one open would hold back
// every subscriber of the PostgreSQL event store. After must name
// projectors of the same Runtime.
type Follower interface {
	Projector
	After() []string
}

// IndexDeferrer is a projector whose Apply never reads through some of the
// indexes of its tables: a rebuild drops them from the shadow tables and
// builds each once after filling them, which costs a fraction of keeping
// them up to date row by row (a GIN index above all). Only indexes that
// enforce nothing may be deferred: a unique index or a primary key is
// refused.
type IndexDeferrer interface {
	Projector
	// DeferredIndexes names indexes of the live tables.
	DeferredIndexes() []string
}

// StreamFolder is a projector each of whose rows is the fold of one stream
// of its categories. A rebuild from a store that reads categories stream by
// stream (eventstore.CategoryReader) hands it every stream whole, so that
// each row is written once: in log order a row is written again for every
// batch its stream appears in. What the rebuild reads after that, and the
// live projector, still go through Apply in log order.
type StreamFolder interface {
	Projector
	// FoldStreams starts the fold of one rebuild.
	FoldStreams() StreamFold
}

// StreamFold receives a rebuild's share of the log stream by stream.
type StreamFold interface {
	// Apply writes the rows of events' streams into tables within tx. Each
	// stream comes whole, in one call: every event of it up to the
	// rebuild's position, in version order, all passing the projector's
	// Filter. Streams come in no particular order, and Apply is called from
	// several goroutines at once, each with a transaction of its own.
	Apply(ctx context.Context, tx pgx.Tx, tables Tables, events []eventstore.Event) error
	// Finish writes what depends on the order of events across streams,
	// after every stream has been applied.
	Finish(ctx context.Context, tx pgx.Tx, tables Tables) error
}

// Tables maps the names a projector declares in Tables to the physical
// tables Apply must write: the same names while live, the shadow tables
// while rebuilding.
type Tables map[string]string

// Ident answers the physical table for name, quoted for use in SQL. It panics
// when the projector did not declare name, a programming error.
func (t Tables) Ident(name string) string {
	phys, ok := t[name]
	if !ok {
		panic(fmt.Sprintf("projections: table %q is not declared by the projector", name))
	}
	return pgx.Identifier{phys}.Sanitize()
}

func identity(tables []string) Tables {
	t := make(Tables, len(tables))
	for _, name := range tables {
		t[name] = name
	}
	return t
}

const (
	shadowSuffix  = "_rebuild"
	retiredSuffix = "_retired"
	// maxIdentifier is PostgreSQL's identifier length limit (NAMEDATALEN-1).
	maxIdentifier = 63
)

var (
	// Names end up in logs, notification payloads and application names:
	// keep them plain.
	validName  = regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`)
	validTable = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// check validates a projector's declaration.
func check(p Projector) error {
	name := p.Name()
	if !validName.MatchString(name) || len(name) > maxIdentifier {
		return fmt.Errorf("projector name %q: want lower-case letters, digits, '_', '.' or '-', at most %d bytes", name, maxIdentifier)
	}
	seen := map[string]bool{}
	for _, t := range p.Tables() {
		if !validTable.MatchString(t) {
			return fmt.Errorf("projector %s: table %q: want an unqualified lower-case name", name, t)
		}
		// The rebuild's shadow and retired names must fit as well.
		if len(t)+max(len(shadowSuffix), len(retiredSuffix)) > maxIdentifier {
			return fmt.Errorf("projector %s: table %q is too long to rebuild (at most %d bytes)", name, t,
				maxIdentifier-max(len(shadowSuffix), len(retiredSuffix)))
		}
		if seen[t] {
			return fmt.Errorf("projector %s: table %q listed twice", name, t)
		}
		seen[t] = true
	}
	return nil
}
