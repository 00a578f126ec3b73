-- Money-path correctness: purchase snapshots on orders, the membership's own daily rate on
-- the account, the append-only balance ledger, payment-mismatch holds.

-- What fulfilment and claw-back need, frozen when the order is created: later catalog
-- edits never change a sold order.
ALTER TABLE orders ADD COLUMN snap_points BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN snap_membership_days BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN snap_tier TEXT;
ALTER TABLE orders ADD COLUMN snap_tier_rank INTEGER;
ALTER TABLE orders ADD COLUMN snap_tier_price_fen BIGINT;
ALTER TABLE orders ADD COLUMN snap_tier_days INTEGER;
-- Upgrades: the tier upgraded from (its rate) and the seconds the upgrade paid for.
ALTER TABLE orders ADD COLUMN snap_from_tier TEXT;
ALTER TABLE orders ADD COLUMN snap_from_rank INTEGER;
ALTER TABLE orders ADD COLUMN snap_from_price_fen BIGINT;
ALTER TABLE orders ADD COLUMN snap_from_days INTEGER;
ALTER TABLE orders ADD COLUMN snap_upgrade_secs BIGINT NOT NULL DEFAULT 0;
-- A verified provider answer that does not match the order (amount, app, merchant):
-- jobs stop retrying it; an operator decides.
ALTER TABLE orders ADD COLUMN sync_halted BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE orders SET
    snap_points = COALESCE((SELECT p.points FROM products p WHERE p.id = orders.product_id), 0) * quantity,
    snap_membership_days = CASE WHEN is_upgrade THEN 0 ELSE
        COALESCE((SELECT p.membership_days FROM products p WHERE p.id = orders.product_id), 0) * quantity END,
    snap_tier = (SELECT p.membership_tier FROM products p WHERE p.id = orders.product_id),
    snap_tier_rank = (SELECT p.tier_rank FROM products p WHERE p.id = orders.product_id),
    snap_tier_price_fen = (SELECT p.price_fen FROM products p WHERE p.id = orders.product_id AND p.kind = 'membership'),
    snap_tier_days = (SELECT p.membership_days FROM products p WHERE p.id = orders.product_id);

-- Unpaid upgrade orders upgrade from the tier the buyer holds now, for all its remaining
-- time (what they were priced for). Paid ones keep no "from" tier: a refund flags them.
UPDATE orders SET
    snap_from_tier = (SELECT u.membership_tier FROM users u WHERE u.id = orders.user_id),
    snap_from_rank = (SELECT p.tier_rank FROM products p, users u WHERE u.id = orders.user_id AND p.kind = 'membership' AND p.membership_tier = u.membership_tier ORDER BY p.active DESC, p.id LIMIT 1),
    snap_from_price_fen = (SELECT p.price_fen FROM products p, users u WHERE u.id = orders.user_id AND p.kind = 'membership' AND p.membership_tier = u.membership_tier ORDER BY p.active DESC, p.id LIMIT 1),
    snap_from_days = (SELECT p.membership_days FROM products p, users u WHERE u.id = orders.user_id AND p.kind = 'membership' AND p.membership_tier = u.membership_tier ORDER BY p.active DESC, p.id LIMIT 1),
    snap_upgrade_secs = 9223372036854775807
WHERE is_upgrade AND status IN ('pending', 'cancelled');

-- The rate of the tier the account holds (price per period), set when it is bought, so
-- converting its remaining time never reads the live catalog.
ALTER TABLE users ADD COLUMN membership_rank INTEGER;
ALTER TABLE users ADD COLUMN membership_price_fen BIGINT;
ALTER TABLE users ADD COLUMN membership_period_days INTEGER;
UPDATE users SET
    membership_rank = (SELECT p.tier_rank FROM products p WHERE p.kind = 'membership' AND p.membership_tier = users.membership_tier ORDER BY p.active DESC, p.id LIMIT 1),
    membership_price_fen = (SELECT p.price_fen FROM products p WHERE p.kind = 'membership' AND p.membership_tier = users.membership_tier ORDER BY p.active DESC, p.id LIMIT 1),
    membership_period_days = (SELECT p.membership_days FROM products p WHERE p.kind = 'membership' AND p.membership_tier = users.membership_tier ORDER BY p.active DESC, p.id LIMIT 1)
WHERE membership_tier IS NOT NULL;

-- Append-only: every change of points_balance or membership writes one row in the same
-- transaction. points_balance = SUM(delta_points); the newest row's tier_after /
-- expires_after is the account's membership.
CREATE TABLE balance_entries (
    id BIGSERIAL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    delta_points BIGINT NOT NULL,
    points_after BIGINT NOT NULL,
    delta_membership_secs BIGINT NOT NULL,
    tier_before TEXT,
    tier_after TEXT,
    expires_before TIMESTAMP,
    expires_after TIMESTAMP,
    order_no TEXT,
    out_refund_no TEXT,
    reason TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX balance_entries_user_idx ON balance_entries (user_id, id);
CREATE INDEX balance_entries_order_idx ON balance_entries (order_no);

INSERT INTO balance_entries (user_id, delta_points, points_after, delta_membership_secs, tier_before, tier_after, expires_before, expires_after, order_no, out_refund_no, reason, created_at)
SELECT id, points_balance, points_balance, 0, NULL, membership_tier, NULL, membership_expires_at, NULL, NULL, 'opening_balance', (now() AT TIME ZONE 'utc')
FROM users WHERE points_balance <> 0 OR membership_tier IS NOT NULL OR membership_expires_at IS NOT NULL;
