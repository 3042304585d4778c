package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/clubcrm/crm/eventstore"
)

// errMoved reports that a projector's checkpoint is not where the writer
// left it: another leader or a rebuild moved it. The writer's batch is void;
// it resumes from the stored checkpoint.
var errMoved = errors.New("checkpoint moved by another writer")

// querier is satisfied by *pgxpool.Pool, *pgx.Conn and pgx.Tx.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Positions are uint64 pairs kept bit for bit in bigint columns.
func pos(commit, prepare int64) eventstore.Position {
	return eventstore.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
}

func ints(p eventstore.Position) (int64, int64) { return int64(p.Commit), int64(p.Prepare) }

// ensureCheckpoint creates name's checkpoint row at the start of the log
// unless it exists.
func ensureCheckpoint(ctx context.Context, db querier, name string) error {
	if _, err := db.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return fmt.Errorf("create checkpoint of %s: %w", name, err)
	}
	return nil
}

// loadCheckpoint answers name's checkpoint; a projector without a row is at
// the start.
func loadCheckpoint(ctx context.Context, db querier, name string) (eventstore.Position, error) {
	var c, p int64
	err := db.QueryRow(ctx, `SELECT commit_position, prepare_position FROM projection_checkpoints WHERE name = $1`, name).Scan(&c, &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Start, nil
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("load checkpoint of %s: %w", name, err)
	}
	return pos(c, p), nil
}

// lockCheckpoint locks name's row for the rest of tx and fails with errMoved
// unless it holds want. Every writer of a projector's tables takes this lock
// first, which serialises a live batch with a rebuild's swap.
func lockCheckpoint(ctx context.Context, tx pgx.Tx, name string, want eventstore.Position) error {
	var c, p int64
	// The batch commits without waiting for its WAL to reach disk: a read
	// model is derived data, and its checkpoint is in the same
	// transaction, so a server crash that loses the last few batches loses
	// rows and checkpoint together and the projector applies them again.
	// Waiting for the flush would cost every batch of every projector a
	// disk sync that the event store's own commits already pay.
	err := tx.QueryRow(ctx, `SELECT commit_position, prepare_position FROM projection_checkpoints, set_config('synchronous_commit', 'off', true)
		WHERE name = $1 FOR UPDATE OF projection_checkpoints`, name).Scan(&c, &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("lock checkpoint of %s: %w: the row is gone", name, errMoved)
	}
	if err != nil {
		return fmt.Errorf("lock checkpoint of %s: %w", name, err)
	}
	if got := pos(c, p); got != want {
		return fmt.Errorf("lock checkpoint of %s: at %s, expected %s: %w", name, got, want, errMoved)
	}
	return nil
}

// saveCheckpoint moves name's checkpoint to to within tx, recording the
// recorded time of the last event applied (zero when the batch held none)
// and clearing the last error.
func saveCheckpoint(ctx context.Context, tx pgx.Tx, name string, to eventstore.Position, lastRecorded time.Time, applied int) error {
	c, p := ints(to)
	var recorded *time.Time
	if !lastRecorded.IsZero() {
		recorded = &lastRecorded
	}
	_, err := tx.Exec(ctx, `UPDATE projection_checkpoints
SET commit_position = $2, prepare_position = $3,
    event_recorded_at = coalesce($4, event_recorded_at),
    events_applied = events_applied + $5,
    updated_at = now(), last_error = NULL, last_error_at = NULL
WHERE name = $1`, name, c, p, recorded, applied)
	if err != nil {
		return fmt.Errorf("save checkpoint of %s: %w", name, err)
	}
	return nil
}

// recordError notes a failed attempt for status reports; it is best effort.
func recordError(ctx context.Context, db querier, name string, failure error) error {
	msg := failure.Error()
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	if _, err := db.Exec(ctx, `UPDATE projection_checkpoints SET last_error = $2, last_error_at = now() WHERE name = $1`, name, msg); err != nil {
		return fmt.Errorf("record error of %s: %w", name, err)
	}
	return nil
}
