-- Identity domain: who a person is. No reference to the credentials tables.
CREATE TABLE users (
    id           BLOB PRIMARY KEY NOT NULL,
    display_name TEXT,
    avatar_url   TEXT,
    bio          TEXT,
    locale       TEXT,
    status       TEXT NOT NULL DEFAULT 'active',
    metadata     TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
