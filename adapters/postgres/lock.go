package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Leading runs fn on a connection holding the session advisory lock key,
// if this process can take it now; led reports whether it could. Jobs that
// several processes run (under the scheduler role) use it so that one at a
// time does the work.
func Leading(ctx context.Context, pool *pgxpool.Pool, key int64, fn func(*pgx.Conn) error) (led bool, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&led); err != nil {
		conn.Release()
		return false, fmt.Errorf("take the lock: %w", err)
	}
	if !led {
		conn.Release()
		return false, nil
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); uerr != nil {
			// Never hand a connection holding the lock back to the pool:
			// closing it frees the lock.
			c := conn.Hijack()
			_ = c.Close(uctx)
			return
		}
		conn.Release()
	}()
	return true, fn(conn.Conn())
}

// Every calls run at once and then every interval until ctx ends: the loop
// of the scheduler's jobs.
func Every(ctx context.Context, interval time.Duration, run func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		run(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
