-- Second factors: a TOTP factor per principal (pending until a first code
-- confirms it; the last accepted time step makes each code work once),
-- backup codes stored as keyed hashes, and the challenges that sit between a
-- first factor and a second.
CREATE TABLE totp_factors (
    principal_id  BLOB PRIMARY KEY NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    id            BLOB NOT NULL,
    secret_sealed BLOB NOT NULL,
    master_key_id TEXT NOT NULL,
    confirmed_at  TEXT,
    last_step     INTEGER,
    created_at    TEXT NOT NULL
) STRICT;

CREATE TABLE backup_codes (
    principal_id BLOB NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    code_hash    BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    used_at      TEXT,
    PRIMARY KEY (principal_id, code_hash)
) STRICT;

CREATE TABLE mfa_challenges (
    id_hash      BLOB PRIMARY KEY NOT NULL,
    principal_id BLOB NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    login_id     BLOB NOT NULL,
    login_type   TEXT NOT NULL,
    identifier   TEXT NOT NULL,
    amr          TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    consumed_at  TEXT
) STRICT;
CREATE INDEX mfa_challenges_expires ON mfa_challenges (expires_at);

-- Keys of the server itself that must outlive a master-key rotation (the
-- backup-code hash key), sealed under the master key.
CREATE TABLE server_secrets (
    name          TEXT PRIMARY KEY NOT NULL,
    secret_sealed BLOB NOT NULL,
    master_key_id TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;

-- WebAuthn credentials: each is a login method of type `passkey` (identifier:
-- its credential id), with what verifying it needs here.
CREATE TABLE passkeys (
    login_id        BLOB PRIMARY KEY NOT NULL REFERENCES login_methods (id) ON DELETE CASCADE,
    principal_id    BLOB NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    credential      TEXT NOT NULL,
    counter         INTEGER NOT NULL,
    backup_eligible INTEGER NOT NULL,
    backed_up       INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    last_used_at    TEXT
) STRICT;
CREATE INDEX passkeys_principal ON passkeys (principal_id);

-- WebAuthn ceremonies begun and not yet finished, taken out once.
CREATE TABLE webauthn_ceremonies (
    id_hash      BLOB PRIMARY KEY NOT NULL,
    purpose      TEXT NOT NULL,
    principal_id BLOB,
    state        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) STRICT;
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies (expires_at);

-- Security keys: WebAuthn credentials kept as a second factor.
CREATE TABLE security_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    principal_id BLOB NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    credential   TEXT NOT NULL,
    counter      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT
) STRICT;
CREATE INDEX security_keys_principal ON security_keys (principal_id);
