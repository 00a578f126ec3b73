-- Lifecycle engine: stock holds, review flags, job leases, refunds, outbox + webhook
-- deliveries, idempotency keys.

ALTER TABLE orders ADD COLUMN stock_held BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN review_reason TEXT;
-- A job (sweeper / reconciler) holds the order until this time; other replicas skip it.
ALTER TABLE orders ADD COLUMN lease_until TIMESTAMP;
ALTER TABLE orders ADD COLUMN query_attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX orders_paid_at_idx ON orders (paid_at);
CREATE INDEX orders_created_idx ON orders (created_at);

CREATE TABLE refunds (
    out_refund_no TEXT PRIMARY KEY NOT NULL,
    order_no TEXT NOT NULL REFERENCES orders (order_no),
    provider TEXT NOT NULL,
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    reason TEXT,
    status TEXT NOT NULL CHECK (status IN ('processing', 'succeeded', 'failed')),
    provider_refund_id TEXT,
    requested_by TEXT NOT NULL,
    failure TEXT,
    lease_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    succeeded_at TIMESTAMP
);
CREATE INDEX refunds_order_idx ON refunds (order_no);
CREATE INDEX refunds_status_idx ON refunds (status);

-- Outbox: written in the same transaction as the order change it reports.
CREATE TABLE outbox_events (
    id TEXT PRIMARY KEY NOT NULL,
    event_type TEXT NOT NULL,
    order_no TEXT,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX outbox_events_order_idx ON outbox_events (order_no);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    event_id TEXT NOT NULL REFERENCES outbox_events (id),
    endpoint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_until TIMESTAMP,
    last_status_code INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_event_endpoint_key ON webhook_deliveries (event_id, endpoint);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);

-- Delivery log: one row per attempt.
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id),
    attempt INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id);

-- Idempotency-Key: a stored response per (user, route, key) for 24 hours.
CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL,
    route TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code INTEGER,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, route, idem_key)
);
