DROP INDEX IF EXISTS orders_renewal_root;
ALTER TABLE orders DROP COLUMN renewal_root;
