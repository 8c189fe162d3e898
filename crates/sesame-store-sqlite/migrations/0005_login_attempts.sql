-- Every sign-in attempt, for forensics and brute-force analysis.
CREATE TABLE login_attempts (
    id           BLOB PRIMARY KEY NOT NULL,
    login_type   TEXT NOT NULL,
    identifier   TEXT NOT NULL,
    principal_id BLOB,
    ip           TEXT,
    success      INTEGER NOT NULL,
    reason       TEXT,
    at           TEXT NOT NULL
) STRICT;
CREATE INDEX login_attempts_login ON login_attempts (login_type, identifier, at);
CREATE INDEX login_attempts_principal ON login_attempts (principal_id, at);
