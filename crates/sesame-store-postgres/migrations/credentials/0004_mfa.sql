-- Second factors: a TOTP factor per principal (pending until a first code
-- confirms it; the last accepted time step makes each code work once),
-- backup codes stored as keyed hashes, and the challenges that sit between a
-- first factor and a second.
CREATE TABLE credentials.totp_factors (
    principal_id  UUID PRIMARY KEY REFERENCES credentials.principals (id) ON DELETE CASCADE,
    id            UUID NOT NULL,
    secret_sealed BYTEA NOT NULL,
    master_key_id TEXT NOT NULL,
    confirmed_at  TIMESTAMPTZ,
    last_step     BIGINT,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE credentials.backup_codes (
    principal_id UUID NOT NULL REFERENCES credentials.principals (id) ON DELETE CASCADE,
    code_hash    BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    PRIMARY KEY (principal_id, code_hash)
);

CREATE TABLE credentials.mfa_challenges (
    id_hash      BYTEA PRIMARY KEY,
    principal_id UUID NOT NULL REFERENCES credentials.principals (id) ON DELETE CASCADE,
    login_id     UUID NOT NULL,
    login_type   TEXT NOT NULL,
    identifier   TEXT NOT NULL,
    amr          JSONB NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    consumed_at  TIMESTAMPTZ
);
CREATE INDEX mfa_challenges_expires ON credentials.mfa_challenges (expires_at);

-- Keys of the server itself that must outlive a master-key rotation (the
-- backup-code hash key), sealed under the master key.
CREATE TABLE credentials.server_secrets (
    name          TEXT PRIMARY KEY,
    secret_sealed BYTEA NOT NULL,
    master_key_id TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- WebAuthn credentials: each is a login method of type `passkey` (identifier:
-- its credential id), with what verifying it needs here.
CREATE TABLE credentials.passkeys (
    login_id        UUID PRIMARY KEY REFERENCES credentials.login_methods (id) ON DELETE CASCADE,
    principal_id    UUID NOT NULL REFERENCES credentials.principals (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    credential      JSONB NOT NULL,
    counter         BIGINT NOT NULL,
    backup_eligible BOOLEAN NOT NULL,
    backed_up       BOOLEAN NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    last_used_at    TIMESTAMPTZ
);
CREATE INDEX passkeys_principal ON credentials.passkeys (principal_id);

-- WebAuthn ceremonies begun and not yet finished, taken out once.
CREATE TABLE credentials.webauthn_ceremonies (
    id_hash      BYTEA PRIMARY KEY,
    purpose      TEXT NOT NULL,
    principal_id UUID,
    state        JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires ON credentials.webauthn_ceremonies (expires_at);

-- Security keys: WebAuthn credentials kept as a second factor.
CREATE TABLE credentials.security_keys (
    id           UUID PRIMARY KEY,
    principal_id UUID NOT NULL REFERENCES credentials.principals (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    credential   JSONB NOT NULL,
    counter      BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX security_keys_principal ON credentials.security_keys (principal_id);
