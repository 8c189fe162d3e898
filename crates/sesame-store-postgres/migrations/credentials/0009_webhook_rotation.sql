-- While a webhook secret rotates, the previous one signs too, until a time.
ALTER TABLE credentials.webhook_endpoints ADD COLUMN previous_secret_sealed BYTEA;
ALTER TABLE credentials.webhook_endpoints ADD COLUMN previous_secret_key_id TEXT;
ALTER TABLE credentials.webhook_endpoints ADD COLUMN previous_until TIMESTAMPTZ;
