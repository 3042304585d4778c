package postgres_test

import (
	"testing"

	"github.com/clubcrm/crm/adapters/postgres/pgtest"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/eventstore/postgres"
	"github.com/clubcrm/crm/eventstore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventstore.Store {
		pool, _ := pgtest.New(t)
		return postgres.New(pool)
	})
}
