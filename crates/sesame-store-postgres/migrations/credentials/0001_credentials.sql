-- Credentials domain: how a principal proves who it is.
CREATE TABLE credentials.principals (
    id              UUID PRIMARY KEY,
    kind            TEXT NOT NULL DEFAULT 'user',
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until    TIMESTAMPTZ,
    last_login_at   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE credentials.login_methods (
    id           UUID PRIMARY KEY,
    principal_id UUID NOT NULL REFERENCES credentials.principals (id) ON DELETE CASCADE,
    login_type   TEXT NOT NULL,
    identifier   TEXT NOT NULL,
    verified_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    CONSTRAINT login_methods_type_identifier UNIQUE (login_type, identifier)
);
CREATE INDEX login_methods_principal ON credentials.login_methods (principal_id);

CREATE TABLE credentials.passwords (
    principal_id UUID PRIMARY KEY REFERENCES credentials.principals (id) ON DELETE CASCADE,
    hash         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE credentials.password_history (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal_id UUID NOT NULL REFERENCES credentials.principals (id) ON DELETE CASCADE,
    hash         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX password_history_principal ON credentials.password_history (principal_id, seq);

CREATE TABLE credentials.sessions (
    id             UUID PRIMARY KEY,
    principal_id   UUID NOT NULL REFERENCES credentials.principals (id) ON DELETE CASCADE,
    principal_kind TEXT NOT NULL,
    device_id      UUID,
    aal            TEXT NOT NULL,
    amr            JSONB NOT NULL,
    ip             TEXT,
    user_agent     TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    last_seen_at   TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoke_reason  TEXT
);
CREATE INDEX sessions_principal ON credentials.sessions (principal_id);

CREATE TABLE credentials.refresh_tokens (
    id         UUID PRIMARY KEY,
    session_id UUID NOT NULL REFERENCES credentials.sessions (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL,
    parent_id  UUID,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX refresh_tokens_hash ON credentials.refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_session ON credentials.refresh_tokens (session_id, id);

CREATE TABLE credentials.signing_keys (
    kid                TEXT PRIMARY KEY,
    alg                TEXT NOT NULL,
    private_key_sealed BYTEA NOT NULL,
    master_key_id      TEXT NOT NULL,
    public_jwk         JSONB NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    activated_at       TIMESTAMPTZ,
    retired_at         TIMESTAMPTZ
);

CREATE TABLE credentials.audit_log (
    id           UUID PRIMARY KEY,
    principal_id UUID,
    event        TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    data         JSONB NOT NULL,
    at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_log_principal ON credentials.audit_log (principal_id);

-- Events waiting for delivery, written in the same transaction as their change.
-- `claimed_until` leases a row to one instance's relay at a time.
CREATE TABLE credentials.outbox (
    id            UUID PRIMARY KEY,
    topic         TEXT NOT NULL,
    payload       JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    published_at  TIMESTAMPTZ,
    attempts      BIGINT NOT NULL DEFAULT 0,
    claimed_until TIMESTAMPTZ
);
CREATE INDEX outbox_pending ON credentials.outbox (id) WHERE published_at IS NULL;

-- One-time codes sent to an e-mail address or phone number; only their MAC is kept.
CREATE TABLE credentials.verification_codes (
    id          UUID PRIMARY KEY,
    purpose     TEXT NOT NULL,
    login_type  TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    code_hash   BYTEA NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ,
    CONSTRAINT verification_codes_key UNIQUE (purpose, login_type, identifier, subject)
);
