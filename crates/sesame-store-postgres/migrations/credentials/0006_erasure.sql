-- An erased principal stays as a tombstone, so that its id never recurs.
ALTER TABLE credentials.principals ADD COLUMN deleted_at TIMESTAMPTZ;
