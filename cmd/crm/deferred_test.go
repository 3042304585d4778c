package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/projections"
)

// TestDeferredIndexesExist checks, against the migrated schema, that every
// index a projector defers to the end of a rebuild is an index of its own
// tables that enforces nothing; a name a migration renamed would otherwise
// fail the next rebuild only.
func TestDeferredIndexesExist(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	for _, p := range allProjectors(nil, nil) {
		d, ok := p.(projections.IndexDeferrer)
		if !ok {
			continue
		}
		for _, name := range d.DeferredIndexes() {
			var table string
			var unique bool
			err := pool.QueryRow(context.Background(), `
SELECT t.relname, x.indisunique OR x.indisprimary
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE i.relname = $1`, name).Scan(&table, &unique)
			require.NoError(t, err, "projector %s defers index %s", p.Name(), name)
			assert.Contains(t, p.Tables(), table, "projector %s defers index %s of another's table", p.Name(), name)
			assert.False(t, unique, "projector %s defers unique index %s", p.Name(), name)
		}
	}
}
