-- Ids of consumed messages, written in the transaction of what each one
-- changed, so that a redelivered message changes nothing twice.
CREATE TABLE processed_messages (
    msg_id       TEXT PRIMARY KEY NOT NULL,
    processed_at TEXT NOT NULL
) STRICT;
