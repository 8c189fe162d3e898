-- Credentials domain: how a principal proves who it is.
CREATE TABLE principals (
    id              BLOB PRIMARY KEY NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'user',
    is_active       INTEGER NOT NULL DEFAULT 1,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    TEXT,
    last_login_at   TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) STRICT;

CREATE TABLE login_methods (
    id           BLOB PRIMARY KEY NOT NULL,
    principal_id BLOB NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    login_type   TEXT NOT NULL,
    identifier   TEXT NOT NULL,
    verified_at  TEXT,
    created_at   TEXT NOT NULL,
    last_used_at TEXT
) STRICT;
CREATE UNIQUE INDEX login_methods_type_identifier ON login_methods (login_type, identifier);
CREATE INDEX login_methods_principal ON login_methods (principal_id);

CREATE TABLE passwords (
    principal_id BLOB PRIMARY KEY NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    hash         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;

CREATE TABLE password_history (
    principal_id BLOB NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    hash         TEXT NOT NULL,
    created_at   TEXT NOT NULL
) STRICT;
CREATE INDEX password_history_principal ON password_history (principal_id);

CREATE TABLE sessions (
    id             BLOB PRIMARY KEY NOT NULL,
    principal_id   BLOB NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    principal_kind TEXT NOT NULL,
    device_id      BLOB,
    aal            TEXT NOT NULL,
    amr            TEXT NOT NULL,
    ip             TEXT,
    user_agent     TEXT,
    created_at     TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    revoked_at     TEXT,
    revoke_reason  TEXT
) STRICT;
CREATE INDEX sessions_principal ON sessions (principal_id);

CREATE TABLE refresh_tokens (
    id         BLOB PRIMARY KEY NOT NULL,
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL,
    parent_id  BLOB,
    used_at    TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX refresh_tokens_hash ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id, id);

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY NOT NULL,
    alg                TEXT NOT NULL,
    private_key_sealed BLOB NOT NULL,
    master_key_id      TEXT NOT NULL,
    public_jwk         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    activated_at       TEXT,
    retired_at         TEXT
) STRICT;

CREATE TABLE audit_log (
    id           BLOB PRIMARY KEY NOT NULL,
    principal_id BLOB,
    event        TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    data         TEXT NOT NULL,
    at           TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_principal ON audit_log (principal_id);
