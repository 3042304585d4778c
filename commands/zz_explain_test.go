package commands_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestScratchExplain(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	must := func(_ any, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.pool.Exec(ctx, `INSERT INTO identity_keys (tenant_id, kind, value, customer_id, caused_by)
		SELECT 'club-' || (i % 3), k, k || '-' || i, md5('c' || (i/2))::uuid, 'x'
		FROM generate_series(1, 400000) i, unnest(ARRAY['email','sclMemberId']) k`))
	must(e.pool.Exec(ctx, `INSERT INTO upstream_inbox (tenant_id, event_id, type, stream)
		SELECT 'club-' || (i % 3), 'ev-' || i, 'member.created', 'customer-x' FROM generate_series(1, 600000) i`))
	must(e.pool.Exec(ctx, "ANALYZE"))
	kinds, values, ids := []string{}, []string{}, []string{}
	for i := range 500 {
		kinds = append(kinds, "email", "sclMemberId")
		values = append(values, fmt.Sprintf("email-%d", i*300), fmt.Sprintf("sclMemberId-%d", i*300))
		ids = append(ids, fmt.Sprintf("ev-%d", i*600))
	}
	var custs []uuid.UUID
	rows, _ := e.pool.Query(ctx, "SELECT DISTINCT customer_id FROM identity_keys WHERE tenant_id = 'club-0' LIMIT 500")
	for rows.Next() {
		var u uuid.UUID
		rows.Scan(&u)
		custs = append(custs, u)
	}
	rows.Close()
	qs := []struct {
		q    string
		args []any
	}{
		{`SELECT event_id, stream FROM upstream_inbox WHERE tenant_id = $1 AND event_id = ANY($2)`, []any{"club-0", ids}},
		{`SELECT k.kind, k.value, k.customer_id FROM identity_keys k JOIN unnest($2::text[], $3::text[]) AS q(kind, value) ON q.kind = k.kind AND q.value = k.value WHERE k.tenant_id = $1 ORDER BY k.created_at, k.customer_id`, []any{"club-0", kinds, values}},
		{`SELECT k.kind, k.value, k.customer_id FROM unnest($2::text[], $3::text[]) AS q(kind, value) CROSS JOIN LATERAL (SELECT * FROM identity_keys k WHERE k.tenant_id = $1 AND k.kind = q.kind AND k.value = q.value) k ORDER BY k.created_at, k.customer_id`, []any{"club-0", kinds, values}},
		{`SELECT customer_id, kind, value FROM identity_keys WHERE tenant_id = $1 AND customer_id = ANY($2)`, []any{"club-0", custs}},
	}
	for _, q := range qs {
		for range 3 {
			s := time.Now()
			r, _ := e.pool.Query(ctx, q.q, q.args...)
			n := 0
			for r.Next() {
				n++
			}
			r.Close()
			fmt.Println("rows", n, time.Since(s))
		}
		rows, err := e.pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q.q, q.args...)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("----", q.q[:60])
		for rows.Next() {
			var s string
			rows.Scan(&s)
			fmt.Println(s[:min(len(s), 150)])
		}
		rows.Close()
	}
}
