-- Expiry sweeper: an expired order whose close at the provider failed is retried at
-- close_retry_at with exponential backoff (1 min, 2, 4 ... capped at 1 h), so orders that
-- keep failing never hold up the others; close_error keeps the last failure for operators.
ALTER TABLE orders ADD COLUMN close_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN close_retry_at TIMESTAMP;
ALTER TABLE orders ADD COLUMN close_error TEXT;

-- Retention purges walk these by age.
CREATE INDEX payment_records_created_idx ON payment_records (created_at);
CREATE INDEX outbox_events_created_idx ON outbox_events (created_at);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id, status);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
