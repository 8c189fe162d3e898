-- Every sign-in attempt that reaches a principal, counted or refused by its
-- lock, moves this number; a right password opens a session only if nothing
-- moved it since its own attempt was claimed.
ALTER TABLE credentials.principals ADD COLUMN attempt_seq BIGINT NOT NULL DEFAULT 0;
