-- A principal's live sessions, newest last: the session limit, the session
-- list and "revoke the others" read only these, not every session the
-- principal ever had.
CREATE INDEX sessions_live ON sessions (principal_id, id) WHERE revoked_at IS NULL;
