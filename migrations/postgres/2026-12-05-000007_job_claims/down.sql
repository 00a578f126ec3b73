ALTER TABLE webhook_deliveries DROP COLUMN resent_at;
ALTER TABLE webhook_deliveries DROP COLUMN resend_requested;
ALTER TABLE webhook_deliveries DROP COLUMN claim_token;
ALTER TABLE orders DROP COLUMN claim_token;
