package servicebench

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MaintenanceResult says whether the harness stood in for autovacuum.
type MaintenanceResult struct {
	// ServerAutovacuum is the server's autovacuum setting. The CI
	// machines run with it off (conf.d/90-ci.conf), which no production
	// server does: tables are then never analyzed, the planner knows
	// nothing of their size, and generic plans scan whole tables.
	ServerAutovacuum string `json:"serverAutovacuum"`
	// Emulated is true when the harness ran autovacuum's work itself.
	Emulated bool `json:"emulated"`
	Analyzes int  `json:"analyzes"`
	Vacuums  int  `json:"vacuums"`
}

// maintainEvery is how often the emulation looks at the tables; the
// autovacuum launcher's default naptime is a minute over all databases.
const maintainEvery = 20 * time.Second

// maintainer vacuums and analyzes the scratch database by autovacuum's
// default thresholds when the server's own autovacuum is off, so that the
// figures are those of a server as production runs one.
type maintainer struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	mu   sync.Mutex
	res  MaintenanceResult
	// analyzeOnly holds VACUUM back: during a rebuild, whose swap must
	// lock the tables within 2 s (autovacuum would give way to it; a
	// VACUUM run by hand does not).
	analyzeOnly bool
	stop        chan struct{}
	done        chan struct{}
}

func startMaintenance(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (*maintainer, error) {
	m := &maintainer{pool: pool, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if err := pool.QueryRow(ctx, `SHOW autovacuum`).Scan(&m.res.ServerAutovacuum); err != nil {
		return nil, fmt.Errorf("show autovacuum: %w", err)
	}
	if m.res.ServerAutovacuum == "on" {
		close(m.done)
		return m, nil
	}
	m.res.Emulated = true
	log.Warn("the server runs with autovacuum off: the harness vacuums and analyzes the scratch database itself, by autovacuum's default thresholds",
		slog.Duration("every", maintainEvery))
	go m.run()
	return m, nil
}

func (m *maintainer) run() {
	defer close(m.done)
	t := time.NewTicker(maintainEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			if err := m.once(context.Background()); err != nil {
				m.log.Warn("maintenance", slog.Any("error", err))
			}
		}
	}
}

// tableStats is what autovacuum decides on.
type tableStats struct {
	name                    string
	tuples                  float64
	modified, dead, inserts int64
}

// once vacuums and analyzes what autovacuum would now, with its defaults:
// analyze after 50 + 10% of the table changed, vacuum after 50 + 20% died
// or 1,000 + 20% were inserted.
func (m *maintainer) once(ctx context.Context) error {
	rows, err := m.pool.Query(ctx, `SELECT s.relname, greatest(c.reltuples, 0), s.n_mod_since_analyze, s.n_dead_tup, s.n_ins_since_vacuum
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.schemaname = 'public'`)
	if err != nil {
		return fmt.Errorf("table statistics: %w", err)
	}
	stats, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tableStats, error) {
		var t tableStats
		return t, r.Scan(&t.name, &t.tuples, &t.modified, &t.dead, &t.inserts)
	})
	if err != nil {
		return fmt.Errorf("table statistics: %w", err)
	}
	m.mu.Lock()
	analyzeOnly := m.analyzeOnly
	m.mu.Unlock()
	for _, t := range stats {
		vacuum := !analyzeOnly && (float64(t.dead) > 50+0.2*t.tuples || float64(t.inserts) > 1000+0.2*t.tuples)
		analyze := float64(t.modified) > 50+0.1*t.tuples
		var sql string
		switch {
		case vacuum && analyze:
			sql = `VACUUM (ANALYZE) `
		case vacuum:
			sql = `VACUUM `
		case analyze:
			sql = `ANALYZE `
		default:
			continue
		}
		select {
		case <-m.stop:
			return nil
		default:
		}
		if _, err := m.pool.Exec(ctx, sql+pgx.Identifier{t.name}.Sanitize()); err != nil {
			return fmt.Errorf("%s%s: %w", sql, t.name, err)
		}
		m.mu.Lock()
		if vacuum {
			m.res.Vacuums++
		}
		if analyze {
			m.res.Analyzes++
		}
		m.mu.Unlock()
	}
	return nil
}

// setAnalyzeOnly holds VACUUM back (true) or lets it run again.
func (m *maintainer) setAnalyzeOnly(v bool) {
	m.mu.Lock()
	m.analyzeOnly = v
	m.mu.Unlock()
}

// close stops the emulation and answers what it did.
func (m *maintainer) close() MaintenanceResult {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.res
}

// TableScans is how a table was read during a phase: sequential scans
// of a large table in a hot path are usually a plan gone wrong.
type TableScans struct {
	Table     string `json:"table"`
	SeqScans  int64  `json:"seqScans"`
	SeqTuples int64  `json:"seqTuplesRead"`
	IdxScans  int64  `json:"indexScans"`
}

func (b *bench) scanCounts(ctx context.Context) (map[string]TableScans, error) {
	rows, err := b.pool.Query(ctx, `SELECT relname, coalesce(seq_scan, 0), coalesce(seq_tup_read, 0), coalesce(idx_scan, 0)
FROM pg_stat_user_tables WHERE schemaname = 'public'`)
	if err != nil {
		return nil, fmt.Errorf("table scans: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableScans, error) {
		var t TableScans
		return t, r.Scan(&t.Table, &t.SeqScans, &t.SeqTuples, &t.IdxScans)
	})
	if err != nil {
		return nil, fmt.Errorf("table scans: %w", err)
	}
	out := make(map[string]TableScans, len(list))
	for _, t := range list {
		out[t.Table] = t
	}
	return out, nil
}

// scansSince answers the tables most read by sequential scans since
// before, at most five.
func (b *bench) scansSince(ctx context.Context, before map[string]TableScans) []TableScans {
	now, err := b.scanCounts(ctx)
	if err != nil {
		b.log.Warn("table scans", slog.Any("error", err))
		return nil
	}
	var out []TableScans
	for name, t := range now {
		p := before[name]
		d := TableScans{Table: name, SeqScans: t.SeqScans - p.SeqScans, SeqTuples: t.SeqTuples - p.SeqTuples, IdxScans: t.IdxScans - p.IdxScans}
		if d.SeqTuples > 0 {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b TableScans) int { return cmp.Compare(b.SeqTuples, a.SeqTuples) })
	return out[:min(len(out), 5)]
}
