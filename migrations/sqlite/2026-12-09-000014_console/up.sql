-- Running the business from the console: the admin audit log, disabled accounts and the
-- record of catalog changes.

-- Every admin action: who, when, what, on which target, the state before and after (JSON).
CREATE TABLE admin_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    -- The admin's account id and username at the time ('cli' for the command line).
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    -- A stable action code: 'refund.create', 'product.update', 'account.adjust', ...
    action TEXT NOT NULL,
    -- What it acted on: 'order', 'refund', 'product', 'account', 'delivery', 'complaint', ...
    target_kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    -- JSON objects (NULL when there was nothing before, or nothing after).
    before_json TEXT,
    after_json TEXT,
    -- The operator's stated reason, when the action takes one.
    reason TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX admin_audit_created_idx ON admin_audit (created_at, id);
CREATE INDEX admin_audit_target_idx ON admin_audit (target_kind, target_id, id);
CREATE INDEX admin_audit_actor_idx ON admin_audit (actor_id, id);

-- A disabled account cannot sign in and its tokens are refused (the version moves too).
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMP;

-- The operator's stated reason of a manual adjustment (NULL for every other entry).
ALTER TABLE balance_entries ADD COLUMN note TEXT;
