package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/clubcrm/crm/adapters/outbox"
	app "github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/eventstore"
	"github.com/clubcrm/crm/eventstore/esdb"
	pgstore "github.com/clubcrm/crm/eventstore/postgres"
	"github.com/clubcrm/crm/projections"
	"github.com/clubcrm/crm/readmodels/activities"
	"github.com/clubcrm/crm/readmodels/customers"
	"github.com/clubcrm/crm/readmodels/metrics"
	"github.com/clubcrm/crm/readmodels/scores"
	"github.com/clubcrm/crm/readmodels/segments"
)

// openEventStore answers the configured event store backend.
func openEventStore(ctx context.Context, cfg *Config, pool *pgxpool.Pool) (eventstore.Store, error) {
	switch cfg.EventStore {
	case "esdb":
		if cfg.EventStoreURL == "" {
			return nil, errors.New("EVENTSTORE_URL: must be set when CRM_EVENTSTORE=esdb")
		}
		s, err := esdb.Open(cfg.EventStoreURL)
		if err != nil {
			return nil, fmt.Errorf("EVENTSTORE_URL: %w", err)
		}
		return eventstore.Upcasting(s, app.Schemas()), nil
	default:
		return eventstore.Upcasting(pgstore.New(pool), app.Schemas()), nil
	}
}

// openRedis connects to REDIS_URL and checks it answers.
func openRedis(ctx context.Context, cfg *Config) (*redis.Client, error) {
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis %s: %w", opts.Addr, err)
	}
	return c, nil
}

// allProjectors answers every projector the service runs. pub carries the
// outbox's produced events and models the tenants' scoring models;
// commands that only inspect projectors pass nil for both (the scores
// projector then scores with the built-in model).
func allProjectors(pub message.Publisher, models scores.Models) []projections.Projector {
	return []projections.Projector{
		customers.Projector{},
		activities.Projector{},
		activities.NotesProjector{},
		metrics.Projector{},
		scores.Projector{Models: models},
		segments.Projector{},
		segments.MembershipProjector{},
		&outbox.Projector{Publisher: pub},
	}
}

// rebuildable reports whether a projector owns a read model to rebuild:
// the outbox owns none, and replaying it would publish history again.
func rebuildable(p projections.Projector) bool { return len(p.Tables()) > 0 }

// readModel reports whether a query may wait for p: every projector that
// keeps something queries read (segment membership owns no table to
// rebuild but keeps segment_members), not the outbox.
func readModel(p projections.Projector) bool {
	_, follows := p.(projections.Follower)
	return rebuildable(p) || follows
}
