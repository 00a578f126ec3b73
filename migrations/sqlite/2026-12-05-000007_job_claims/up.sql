-- Fenced job claims: each claim of an order or a webhook delivery carries a token, and
-- only the holder of the current token may finish or release it. An admin resend of a
-- delivery whose attempt is in flight is remembered and done after that attempt; the
-- retry window restarts at the resend.
ALTER TABLE orders ADD COLUMN claim_token TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN claim_token TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN resend_requested BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE webhook_deliveries ADD COLUMN resent_at TIMESTAMP;
