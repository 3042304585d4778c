package projections

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Advisory lock namespaces (the first key of the two-key form, so they never
// meet the single-key locks migrations and tests take). The second key is
// lockKey of the projector's name.
const (
	leaderLockSpace  int32 = 0x63726d50 // "crmP": runs the projector
	rebuildLockSpace int32 = 0x63726d52 // "crmR": rebuilds it
)

// lockKey answers the advisory lock key of a projector. It is non-negative
// so that it reads the same in pg_locks.objid, an unsigned oid.
func lockKey(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32() & 0x7fffffff)
}

// applicationName identifies this process's sessions in pg_stat_activity,
// which is how status reports name a projector's leader.
func applicationName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("crm-projections pid=%d host=%s", os.Getpid(), host)
}

// sessionConfig answers a copy of base for a long-lived session of its own,
// outside the pool. The keepalives make the server notice a vanished client
// host within about 25 s and free its locks; a client that merely exits is
// noticed at once when its socket closes.
func sessionConfig(base *pgx.ConnConfig) *pgx.ConnConfig {
	cfg := base.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = applicationName()
	cfg.RuntimeParams["tcp_keepalives_idle"] = "10"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "5"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	return cfg
}

// elector decides which projectors this process runs. It holds the
// projectors' leadership locks on one connection of its own and, every
// interval, tries the locks it lacks; the same query tells it whether the
// connection is still there. When it is not, the locks are gone with it and
// the elector stops every projector it runs before trying again.
type elector struct {
	cfg      *pgx.ConnConfig
	keys     map[string]int32
	interval time.Duration
	log      *slog.Logger
	metrics  *metrics
	lead     func(ctx context.Context, name string) // runs a projector until ctx is done

	mu   sync.Mutex
	held map[string]*leadership
}

type leadership struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// leads reports whether this process currently runs name.
func (e *elector) leads(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.held[name]
	return ok
}

// run elects until ctx is done, then stops the projectors it runs and
// closes its connection, which frees their locks for other processes.
func (e *elector) run(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		e.stopAll()
		if conn != nil {
			closeConn(conn)
		}
	}()
	connectFailures := 0
	for {
		if conn == nil {
			c, err := pgx.ConnectConfig(ctx, e.cfg)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// Log the first failure and then every minute or so.
				if connectFailures%60 == 0 {
					e.log.Error("projection elector cannot connect; retrying", "err", err)
				}
				connectFailures++
			} else {
				conn, connectFailures = c, 0
			}
		}
		if conn != nil {
			won, err := e.tryLocks(ctx, conn)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// The locks went with the connection: another process may
				// be taking over right now, so stop applying at once.
				e.log.Error("projection elector lost its connection; stopping projectors", "err", err)
				e.stopAll()
				closeConn(conn)
				conn = nil
			}
			for _, name := range won {
				e.start(ctx, name)
			}
		}
		if !sleep(ctx, e.interval) {
			return
		}
	}
}

// tryLocks tries the locks of the projectors this process does not run and
// answers those it won. With none to try it still asks the server something,
// to find out that the connection is alive.
func (e *elector) tryLocks(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	var names []string
	var keys []int32
	e.mu.Lock()
	for name, key := range e.keys {
		if _, ok := e.held[name]; !ok {
			names = append(names, name)
			keys = append(keys, key)
		}
	}
	e.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, max(5*time.Second, 2*e.interval))
	defer cancel()
	if len(keys) == 0 {
		_, err := conn.Exec(ctx, "SELECT 1")
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT k FROM unnest($2::int4[]) AS k WHERE pg_try_advisory_lock($1::int4, k)`, leaderLockSpace, keys)
	if err != nil {
		return nil, fmt.Errorf("try leader locks: %w", err)
	}
	wonKeys, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("try leader locks: %w", err)
	}
	var won []string
	for _, k := range wonKeys {
		for i, key := range keys {
			if key == k {
				won = append(won, names[i])
			}
		}
	}
	return won, nil
}

func (e *elector) start(ctx context.Context, name string) {
	ctx, cancel := context.WithCancel(ctx)
	l := &leadership{cancel: cancel, done: make(chan struct{})}
	e.mu.Lock()
	if e.held == nil {
		e.held = map[string]*leadership{}
	}
	e.held[name] = l
	e.mu.Unlock()
	e.metrics.leader.WithLabelValues(name).Set(1)
	e.log.Info("projector elected here", "projector", name)
	go func() {
		defer close(l.done)
		e.lead(ctx, name)
	}()
}

// stopAll stops every projector this process runs and waits until they
// have (their transactions in flight roll back).
func (e *elector) stopAll() {
	e.mu.Lock()
	held := e.held
	e.held = nil
	e.mu.Unlock()
	for _, l := range held {
		l.cancel()
	}
	for name, l := range held {
		<-l.done
		e.metrics.leader.WithLabelValues(name).Set(0)
		e.log.Info("projector stopped here", "projector", name)
	}
}

// closeConn closes a session with a context of its own: the caller's may be
// done, and closing is what frees the session's locks at once.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.Close(ctx) //nolint:errcheck // the server frees the session's locks either way
}
