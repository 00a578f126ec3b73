ALTER TABLE orders DROP COLUMN paid_check_at;
ALTER TABLE orders DROP COLUMN paid_check_failures;
