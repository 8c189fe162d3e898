-- An explicit sequence column orders a principal's password history, as on
-- PostgreSQL, instead of the implicit rowid. Existing rows keep their order.
CREATE TABLE password_history_new (
    seq          INTEGER PRIMARY KEY,
    principal_id BLOB NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    hash         TEXT NOT NULL,
    created_at   TEXT NOT NULL
) STRICT;
INSERT INTO password_history_new (seq, principal_id, hash, created_at)
    SELECT rowid, principal_id, hash, created_at FROM password_history ORDER BY rowid;
DROP TABLE password_history;
ALTER TABLE password_history_new RENAME TO password_history;
CREATE INDEX password_history_principal ON password_history (principal_id, seq);
