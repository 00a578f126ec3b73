CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    points_balance BIGINT NOT NULL DEFAULT 0,
    membership_tier TEXT,
    membership_expires_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (username);

CREATE TABLE products (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('points', 'membership')),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price_fen BIGINT NOT NULL CHECK (price_fen > 0),
    points BIGINT,
    membership_days INTEGER,
    membership_tier TEXT,
    tier_rank INTEGER,
    stock BIGINT CHECK (stock IS NULL OR stock >= 0),
    active BOOLEAN NOT NULL DEFAULT 1,
    sort_order INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Default catalog (1 yuan = 10 points); operators edit or deactivate rows freely.
INSERT INTO products (kind, name, description, price_fen, points, membership_days, membership_tier, tier_rank, stock, active, sort_order, created_at, updated_at) VALUES
    ('points', '100 积分', '入门积分包 / Starter pack: 100 points', 1000, 100, NULL, NULL, NULL, NULL, 1, 10, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
    ('points', '550 积分', '超值积分包 / Value pack: 500 + 50 bonus points', 5000, 550, NULL, NULL, NULL, NULL, 1, 20, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
    ('points', '1200 积分', '大额积分包 / Pro pack: 1000 + 200 bonus points', 10000, 1200, NULL, NULL, NULL, NULL, 1, 30, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
    ('membership', '基础会员（月）', 'Basic membership, 30 days', 2900, NULL, 30, 'basic', 1, NULL, 1, 40, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),
    ('membership', '专业会员（月）', 'Pro membership, 30 days', 9900, NULL, 30, 'pro', 2, NULL, 1, 50, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);
