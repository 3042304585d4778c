package customers

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
)

func TestArrayLiteralReadsBack(t *testing.T) {
	pool, _ := pgtest.New(t)
	for _, tags := range [][]string{
		{},
		{"vip"},
		{"NULL", "null", ""},
		{`say "hi"`, `back\slash`, `\"`, "{braces}", "a,b", " padded ", "ünï ☃"},
	} {
		var got []string
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT $1::text::text[]`, arrayLiteral(tags)).Scan(&got))
		assert.Equal(t, tags, got, "literal %s", arrayLiteral(tags))
	}
}
