-- Three-way reconciliation of the providers' daily bills with orders and refunds: one
-- run per (provider, China-time day), its totals, and one item per matched pair or
-- difference. A rerun replaces the run's items in one transaction.
CREATE TABLE reconciliations (
    id BIGSERIAL PRIMARY KEY,
    provider TEXT NOT NULL,
    -- 'YYYY-MM-DD', China time (UTC+8), as the providers cut their bills.
    day TEXT NOT NULL,
    -- pending | done | failed | not_ready
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    lease_until TIMESTAMP,
    claim_token TEXT,
    bill_payments_fen BIGINT NOT NULL DEFAULT 0,
    bill_refunds_fen BIGINT NOT NULL DEFAULT 0,
    bill_fees_fen BIGINT NOT NULL DEFAULT 0,
    net_fen BIGINT NOT NULL DEFAULT 0,
    our_payments_fen BIGINT NOT NULL DEFAULT 0,
    our_refunds_fen BIGINT NOT NULL DEFAULT 0,
    matched_count BIGINT NOT NULL DEFAULT 0,
    difference_count BIGINT NOT NULL DEFAULT 0,
    applied_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    error TEXT,
    UNIQUE (provider, day)
);
CREATE INDEX reconciliations_day_idx ON reconciliations (day);

CREATE TABLE reconciliation_items (
    id BIGSERIAL PRIMARY KEY,
    reconciliation_id BIGINT NOT NULL REFERENCES reconciliations (id),
    kind TEXT NOT NULL,
    order_no TEXT,
    out_refund_no TEXT,
    provider_trade_no TEXT,
    our_amount_fen BIGINT,
    provider_amount_fen BIGINT,
    our_status TEXT,
    provider_status TEXT,
    applied BOOLEAN NOT NULL DEFAULT FALSE,
    -- none (matched) | open (a difference to look at)
    review TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX reconciliation_items_run_idx ON reconciliation_items (reconciliation_id);
