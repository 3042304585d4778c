package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Idempotency keeps first responses to Idempotency-Keys (httpapi.IdempotencyStore).
type Idempotency struct {
	Pool *pgxpool.Pool
}

// Lookup answers the stored response for key.
func (s *Idempotency) Lookup(ctx context.Context, tenant, key string) (hash string, status int, body []byte, found bool, err error) {
	err = InTenant(ctx, s.Pool, tenant, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT request_hash, status, response FROM idempotency_keys WHERE key = $1`, key).Scan(&hash, &status, &body)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return "", 0, nil, false, fmt.Errorf("idempotency lookup: %w", err)
	}
	return hash, status, body, found, nil
}

// Save stores a response unless the key has one already.
func (s *Idempotency) Save(ctx context.Context, tenant, key, hash string, status int, body []byte) error {
	if len(body) == 0 {
		body = []byte("null")
	}
	err := InTenant(ctx, s.Pool, tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (tenant_id, key, request_hash, status, response) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
			tenant, key, hash, status, body)
		return err
	})
	if err != nil {
		return fmt.Errorf("idempotency save: %w", err)
	}
	return nil
}
