-- Every sign-in attempt that reaches a principal, counted or refused by its
-- lock, moves this number; a right password opens a session only if nothing
-- moved it since its own attempt was claimed.
ALTER TABLE principals ADD COLUMN attempt_seq INTEGER NOT NULL DEFAULT 0;
-- When a password was removed because a login was first proven by someone
-- holding no session of the account (account pre-hijacking), for the owner.
ALTER TABLE principals ADD COLUMN password_removed_at TEXT;
-- When the session last proved itself (sign-in or re-authentication); sensitive
-- changes need a recent proof. NULL: at creation.
ALTER TABLE sessions ADD COLUMN proven_at TEXT;
-- A rotated refresh token, sealed under the master key, so that a retry of
-- the refresh it answered (within the grace window) gets the same token back.
ALTER TABLE refresh_tokens ADD COLUMN secret_sealed BLOB;
ALTER TABLE refresh_tokens ADD COLUMN secret_key_id TEXT;
CREATE INDEX refresh_tokens_parent ON refresh_tokens (parent_id);
