-- One-time codes sent to an e-mail address or phone number; only their MAC is kept.
CREATE TABLE verification_codes (
    id          BLOB PRIMARY KEY NOT NULL,
    purpose     TEXT NOT NULL,
    login_type  TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    code_hash   BLOB NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    consumed_at TEXT
) STRICT;
CREATE UNIQUE INDEX verification_codes_key ON verification_codes (purpose, login_type, identifier, subject);
