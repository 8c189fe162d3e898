-- Sign-in through other identity providers. A connection's logins are
-- ordinary login methods (login_type = the connection's name); what is here
-- is the flow state, the connections managed at run time and the provider
-- tokens a connection keeps.
CREATE TABLE federation_flows (
    id                    BLOB PRIMARY KEY NOT NULL,
    connection            TEXT NOT NULL,
    state_hash            BLOB NOT NULL UNIQUE,
    intent                TEXT NOT NULL,
    principal_id          BLOB,
    nonce                 TEXT NOT NULL,
    pkce_verifier_sealed  BLOB NOT NULL,
    pkce_key_id           TEXT NOT NULL,
    app_challenge         TEXT NOT NULL,
    return_to             TEXT NOT NULL,
    login_code_hash       BLOB,
    login_code_expires_at TEXT,
    result_sealed         BLOB,
    result_key_id         TEXT,
    created_at            TEXT NOT NULL,
    expires_at            TEXT NOT NULL,
    consumed_at           TEXT,
    exchanged_at          TEXT
) STRICT;
CREATE INDEX federation_flows_expires ON federation_flows (expires_at);

CREATE TABLE federation_connections (
    name          TEXT PRIMARY KEY NOT NULL,
    settings      TEXT NOT NULL,
    secret_sealed BLOB,
    secret_key_id TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;

CREATE TABLE provider_tokens (
    login_id     BLOB PRIMARY KEY NOT NULL REFERENCES login_methods (id) ON DELETE CASCADE,
    sealed       BLOB NOT NULL,
    key_id       TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
