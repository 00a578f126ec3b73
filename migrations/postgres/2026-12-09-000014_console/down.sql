ALTER TABLE balance_entries DROP COLUMN note;
ALTER TABLE users DROP COLUMN disabled_at;
DROP TABLE admin_audit;
