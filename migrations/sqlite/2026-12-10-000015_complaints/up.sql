-- WeChat Pay consumer complaints (消费者投诉 2.0), as last read from the complaint API.
-- A row is written only from a verified API answer (a notification carries nothing but
-- the id). The payer's encrypted phone is never stored. The negotiation history is kept
-- as the JSON array WeChat answers (newest read replaces the old one).
CREATE TABLE complaints (
    complaint_id TEXT PRIMARY KEY NOT NULL,
    -- pending | processing | processed
    state TEXT NOT NULL,
    problem_type TEXT,
    problem_description TEXT NOT NULL,
    complaint_detail TEXT NOT NULL,
    complaint_time TIMESTAMP NOT NULL,
    -- The complained-about payment, fen (the first complaint_order_info entry).
    amount_fen BIGINT,
    out_trade_no TEXT,
    transaction_id TEXT,
    -- Our order when out_trade_no names one.
    order_no TEXT,
    user_complaint_times BIGINT NOT NULL DEFAULT 0,
    incoming_user_response BOOLEAN NOT NULL DEFAULT 0,
    -- First reply due (PENDING complaints only: complaint_time + 24 h).
    response_deadline TIMESTAMP,
    handled_at TIMESTAMP,
    last_synced_at TIMESTAMP NOT NULL,
    -- The detail as answered, without payer_phone.
    raw_detail TEXT NOT NULL,
    history_json TEXT NOT NULL DEFAULT '[]',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX complaints_state_time_idx ON complaints (state, complaint_time);
CREATE INDEX complaints_order_no_idx ON complaints (order_no);
