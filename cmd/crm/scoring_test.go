package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/domain/scoring"
)

// TestScoringCommand sets a tenant's model from a file and shows it, and
// its history, back.
func TestScoringCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, dsn := pgtest.New(t)
	run := func(args ...string) (scoring.Versioned, error) {
		var out bytes.Buffer
		err := dispatch(ctx, append([]string{"scoring", "--database-url", dsn}, args...), &out, &out)
		var v scoring.Versioned
		if err == nil {
			require.NoError(t, json.Unmarshal(out.Bytes(), &v), out.String())
		}
		return v, err
	}
	v, err := run("show", "--tenant", "club-a")
	require.NoError(t, err)
	assert.Equal(t, uint64(0), v.Version)

	file := filepath.Join(t.TempDir(), "model.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"alerts": {"churnHigh": 75, "churnClear": 55, "engagementDrop": 15}}`), 0o600))
	v, err = run("set", "--tenant", "club-a", "--file", file, "--actor", "analyst")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), v.Version)
	assert.Equal(t, 75.0, v.Model.Alerts.ChurnHigh)
	assert.Equal(t, "analyst", v.ChangedBy)

	require.NoError(t, os.WriteFile(file, []byte(`{"alerts": {"churnHigh": 40, "churnClear": 55}}`), 0o600))
	_, err = run("set", "--tenant", "club-a", "--file", file)
	require.ErrorContains(t, err, "alerts.churnClear")

	v, err = run("show", "--tenant", "club-a", "--version", "1")
	require.NoError(t, err)
	assert.Equal(t, 55.0, v.Model.Alerts.ChurnClear)
	_, err = run("show")
	require.ErrorContains(t, err, "--tenant")
}
