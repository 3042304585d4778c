-- +goose Up
-- A staff note may be marked as a complaint (customer.note.added and
-- customer.note.edited carry "complaint"); churn scoring counts the
-- complaints of the last 180 days. Notes written before carry false, as
-- their events decode.
ALTER TABLE customer_notes ADD COLUMN complaint boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE customer_notes DROP COLUMN IF EXISTS complaint;
