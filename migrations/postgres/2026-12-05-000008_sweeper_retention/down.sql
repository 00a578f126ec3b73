DROP INDEX idempotency_keys_expires_idx;
DROP INDEX webhook_deliveries_event_idx;
DROP INDEX outbox_events_created_idx;
DROP INDEX payment_records_created_idx;
ALTER TABLE orders DROP COLUMN close_error;
ALTER TABLE orders DROP COLUMN close_retry_at;
ALTER TABLE orders DROP COLUMN close_failures;
