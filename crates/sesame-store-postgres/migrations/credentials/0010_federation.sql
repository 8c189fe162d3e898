-- Sign-in through other identity providers. A connection's logins are
-- ordinary login methods (login_type = the connection's name); what is here
-- is the flow state, the connections managed at run time and the provider
-- tokens a connection keeps.
CREATE TABLE credentials.federation_flows (
    id                    UUID PRIMARY KEY,
    connection            TEXT NOT NULL,
    state_hash            BYTEA NOT NULL UNIQUE,
    intent                TEXT NOT NULL,
    principal_id          UUID,
    nonce                 TEXT NOT NULL,
    pkce_verifier_sealed  BYTEA NOT NULL,
    pkce_key_id           TEXT NOT NULL,
    app_challenge         TEXT NOT NULL,
    return_to             TEXT NOT NULL,
    login_code_hash       BYTEA,
    login_code_expires_at TIMESTAMPTZ,
    result_sealed         BYTEA,
    result_key_id         TEXT,
    created_at            TIMESTAMPTZ NOT NULL,
    expires_at            TIMESTAMPTZ NOT NULL,
    consumed_at           TIMESTAMPTZ,
    exchanged_at          TIMESTAMPTZ
);
CREATE INDEX federation_flows_expires ON credentials.federation_flows (expires_at);

CREATE TABLE credentials.federation_connections (
    name          TEXT PRIMARY KEY NOT NULL,
    settings      JSONB NOT NULL,
    secret_sealed BYTEA,
    secret_key_id TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE credentials.provider_tokens (
    login_id     UUID PRIMARY KEY REFERENCES credentials.login_methods (id) ON DELETE CASCADE,
    sealed       BYTEA NOT NULL,
    key_id       TEXT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
