-- Who may do what: roles (named sets of `resource:action` permissions; the
-- built-in `admin` holds them all), their assignments to principals, and the
-- service API keys other services call with (only a hash of each secret).
CREATE TABLE credentials.roles (
    name        TEXT PRIMARY KEY,
    permissions JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE credentials.role_assignments (
    principal_id UUID NOT NULL REFERENCES credentials.principals (id) ON DELETE CASCADE,
    role         TEXT NOT NULL REFERENCES credentials.roles (name) ON DELETE CASCADE,
    assigned_by  UUID,
    assigned_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (principal_id, role)
);
CREATE INDEX role_assignments_role ON credentials.role_assignments (role);

CREATE TABLE credentials.api_keys (
    id           UUID PRIMARY KEY,
    key_id       TEXT NOT NULL UNIQUE,
    secret_hash  BYTEA NOT NULL,
    name         TEXT NOT NULL,
    scopes       JSONB NOT NULL,
    created_by   UUID,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
