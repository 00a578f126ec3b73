CREATE TABLE orders (
    order_no TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    product_id BIGINT NOT NULL,
    product_type TEXT NOT NULL,
    product_name TEXT NOT NULL,
    unit_price_fen BIGINT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    is_upgrade BOOLEAN NOT NULL DEFAULT FALSE,
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    provider TEXT NOT NULL CHECK (provider IN ('wechat', 'alipay')),
    channel TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'cancelled', 'refunded')),
    cancel_reason TEXT,
    refunded_fen BIGINT NOT NULL DEFAULT 0,
    provider_transaction_id TEXT,
    qr_code_url TEXT,
    pay_url TEXT,
    h5_url TEXT,
    sdk_params TEXT,
    expire_at TIMESTAMP NOT NULL,
    qr_code_expire_at TIMESTAMP NOT NULL,
    paid_at TIMESTAMP,
    last_query_at TIMESTAMP,
    needs_review BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at);
CREATE INDEX orders_status_expire_idx ON orders (status, expire_at);

CREATE TABLE payment_records (
    id BIGSERIAL PRIMARY KEY,
    order_no TEXT,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    headers TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL DEFAULT '',
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    decision TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX payment_records_order_idx ON payment_records (order_no);
