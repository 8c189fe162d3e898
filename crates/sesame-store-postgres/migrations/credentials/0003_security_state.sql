-- Every sign-in attempt that reaches a principal, counted or refused by its
-- lock, moves this number; a right password opens a session only if nothing
-- moved it since its own attempt was claimed.
ALTER TABLE credentials.principals ADD COLUMN attempt_seq BIGINT NOT NULL DEFAULT 0;
-- When a password was removed because a login was first proven by someone
-- holding no session of the account (account pre-hijacking), for the owner.
ALTER TABLE credentials.principals ADD COLUMN password_removed_at TIMESTAMPTZ;
-- When the session last proved itself (sign-in or re-authentication); sensitive
-- changes need a recent proof. NULL: at creation.
ALTER TABLE credentials.sessions ADD COLUMN proven_at TIMESTAMPTZ;
-- A rotated refresh token, sealed under the master key, so that a retry of
-- the refresh it answered (within the grace window) gets the same token back.
ALTER TABLE credentials.refresh_tokens ADD COLUMN secret_sealed BYTEA;
ALTER TABLE credentials.refresh_tokens ADD COLUMN secret_key_id TEXT;
CREATE INDEX refresh_tokens_parent ON credentials.refresh_tokens (parent_id);
-- Every code request is a flow of its own, named by a random id that only the
-- requester learns: guesses that name a flow count against it alone, guesses
-- that name none against the login's newest code, each with its own five tries.
ALTER TABLE credentials.verification_codes DROP CONSTRAINT verification_codes_key;
ALTER TABLE credentials.verification_codes ADD COLUMN flow_id TEXT;
ALTER TABLE credentials.verification_codes ADD COLUMN anonymous_attempts BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX verification_codes_flow ON credentials.verification_codes (flow_id);
CREATE INDEX verification_codes_login ON credentials.verification_codes (purpose, login_type, identifier, subject, created_at);
-- Cooldowns and failure counters (locks of logins that belong to nobody, code
-- budgets, resend cooldowns) under keyed names, so that they outlive a restart.
CREATE TABLE credentials.limit_state (
    key      TEXT PRIMARY KEY NOT NULL,
    count    BIGINT NOT NULL,
    until_ms BIGINT NOT NULL
);
