-- Merchant apps: other applications that use fenpay through its server API (an API key),
-- the hosted checkout page, their own users' tokens and the epay protocol.
CREATE TABLE apps (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- 'live' (the configured providers) or 'test' (keys that say so; documented use: the emulator)
    key_mode TEXT NOT NULL CHECK (key_mode IN ('live', 'test')),
    -- The first characters of the key, shown to tell keys apart ('sk_live_ab12').
    key_prefix TEXT NOT NULL,
    -- HMAC-SHA256 of the whole key under the server's key-hash secret, hex; the key itself
    -- is shown once and never stored.
    key_hash TEXT NOT NULL,
    webhook_url TEXT,
    -- Signs the app's webhooks and return redirects; shown once at creation and rotation.
    webhook_secret TEXT NOT NULL,
    -- Hosts a return_url may point at, comma-separated ('' = none allowed).
    return_hosts TEXT NOT NULL DEFAULT '',
    -- 'builtin' (points and memberships credited by fenpay) or 'webhook' (the app credits
    -- its own users from the events).
    fulfilment TEXT NOT NULL CHECK (fulfilment IN ('builtin', 'webhook')),
    -- Largest amount of one order, fen.
    max_amount_fen BIGINT NOT NULL CHECK (max_amount_fen > 0),
    -- The epay (易支付) merchant id and key; the gateway answers this app only when enabled.
    epay_pid BIGINT,
    epay_key TEXT,
    epay_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    -- Bring-your-own-auth: the app's own user tokens (JWT) accepted on the seed contract.
    jwt_issuer TEXT,
    jwt_audience TEXT,
    jwt_hs256_secret TEXT,
    -- A PEM public key or a JWKS document (RS256 / ES256), as text.
    jwt_public_keys TEXT,
    -- The account the app's orders belong to when they name no customer.
    user_id TEXT NOT NULL REFERENCES users (id),
    revoked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX apps_key_hash_key ON apps (key_hash);
CREATE UNIQUE INDEX apps_epay_pid_key ON apps (epay_pid);
CREATE UNIQUE INDEX apps_jwt_issuer_key ON apps (jwt_issuer);

-- An app's customers (customer_ref, a JWT's sub) as fenpay accounts, made on first use.
CREATE TABLE app_accounts (
    app_id TEXT NOT NULL REFERENCES apps (id),
    external_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (app_id, external_id)
);
CREATE UNIQUE INDEX app_accounts_user_key ON app_accounts (user_id);

-- A merchant order: what the app asked for. The order row (same order_no) exists once a
-- payment method is chosen (at creation, or by the buyer on the hosted checkout page);
-- until then the buyer can still choose, the app can cancel, and it expires at expire_at.
CREATE TABLE checkouts (
    order_no TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id),
    out_order_no TEXT NOT NULL,
    -- SHA-256 of the creating request's meaning: the same out_order_no with another body is 409.
    request_hash TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    subject TEXT NOT NULL,
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    -- What was bought, frozen when the app made the order: 'custom' (an amount, nothing
    -- credited) or a catalog product with its unit price and grants (see orders.snap_*).
    product_type TEXT NOT NULL,
    product_id BIGINT,
    unit_price_fen BIGINT NOT NULL,
    quantity BIGINT NOT NULL DEFAULT 1,
    snap_points BIGINT NOT NULL DEFAULT 0,
    snap_membership_days BIGINT NOT NULL DEFAULT 0,
    snap_tier TEXT,
    snap_tier_rank INTEGER,
    snap_tier_price_fen BIGINT,
    snap_tier_days INTEGER,
    customer_ref TEXT,
    metadata TEXT,
    -- Fixed by the app (or null: the buyer picks); channel likewise.
    payment_method TEXT,
    channel TEXT,
    return_url TEXT,
    -- epay orders: where the payment notification goes.
    notify_url TEXT,
    -- 'builtin' | 'webhook', the app's mode when the order was made.
    fulfilment TEXT NOT NULL,
    -- 'open' (no method yet) | 'chosen' (the order row exists) | 'cancelled'
    status TEXT NOT NULL CHECK (status IN ('open', 'chosen', 'cancelled')),
    expire_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX checkouts_app_out_key ON checkouts (app_id, out_order_no);
CREATE INDEX checkouts_app_created_idx ON checkouts (app_id, created_at);

-- Orders made for an app carry what its webhooks need.
ALTER TABLE orders ADD COLUMN app_id TEXT;
ALTER TABLE orders ADD COLUMN out_order_no TEXT;
ALTER TABLE orders ADD COLUMN customer_ref TEXT;
ALTER TABLE orders ADD COLUMN metadata TEXT;
ALTER TABLE orders ADD COLUMN return_url TEXT;
ALTER TABLE orders ADD COLUMN notify_url TEXT;
CREATE INDEX orders_app_created_idx ON orders (app_id, created_at);
