-- Identity domain: who a person is. No reference to the credentials schema.
CREATE TABLE identity.users (
    id           UUID PRIMARY KEY,
    display_name TEXT,
    avatar_url   TEXT,
    bio          TEXT,
    locale       TEXT,
    status       TEXT NOT NULL DEFAULT 'active',
    metadata     JSONB NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
