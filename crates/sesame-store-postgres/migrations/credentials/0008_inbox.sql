-- Ids of consumed messages, written in the transaction of what each one
-- changed, so that a redelivered message changes nothing twice.
CREATE TABLE credentials.processed_messages (
    msg_id       TEXT PRIMARY KEY,
    processed_at TIMESTAMPTZ NOT NULL
);
