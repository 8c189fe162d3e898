-- Every sign-in attempt, for forensics and brute-force analysis.
CREATE TABLE credentials.login_attempts (
    id           UUID PRIMARY KEY,
    login_type   TEXT NOT NULL,
    identifier   TEXT NOT NULL,
    principal_id UUID,
    ip           TEXT,
    success      BOOLEAN NOT NULL,
    reason       TEXT,
    at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX login_attempts_login ON credentials.login_attempts (login_type, identifier, at);
CREATE INDEX login_attempts_principal ON credentials.login_attempts (principal_id, at);
