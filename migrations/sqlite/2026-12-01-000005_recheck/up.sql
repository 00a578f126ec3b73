-- Paid-after-close check of a cancelled order. A verified query ends it; a failed one
-- is retried at paid_check_at with exponential backoff (1 min, 2, 4 ... capped at 1 h).
ALTER TABLE orders ADD COLUMN paid_check_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN paid_check_at TIMESTAMP;
