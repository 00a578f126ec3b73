-- A new QR code for the same purchase is a new order that replaces the old one (the
-- checkout's "get a new code"). Every order of such a chain names the chain's first order
-- here, so a second payment in the same chain is found in one indexed lookup and held for
-- review as a duplicate payment.
ALTER TABLE orders ADD COLUMN renewal_root TEXT;
CREATE INDEX orders_renewal_root ON orders (renewal_root);
