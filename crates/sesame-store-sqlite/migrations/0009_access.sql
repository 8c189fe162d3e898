-- Who may do what: roles (named sets of `resource:action` permissions; the
-- built-in `admin` holds them all), their assignments to principals, and the
-- service API keys other services call with (only a hash of each secret).
CREATE TABLE roles (
    name        TEXT PRIMARY KEY NOT NULL,
    permissions TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE role_assignments (
    principal_id BLOB NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    role         TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    assigned_by  BLOB,
    assigned_at  TEXT NOT NULL,
    PRIMARY KEY (principal_id, role)
) STRICT;
CREATE INDEX role_assignments_role ON role_assignments (role);

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    key_id       TEXT NOT NULL UNIQUE,
    secret_hash  BLOB NOT NULL,
    name         TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_by   BLOB,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT
) STRICT;
