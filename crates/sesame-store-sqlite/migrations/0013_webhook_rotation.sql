-- While a webhook secret rotates, the previous one signs too, until a time.
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_sealed BLOB;
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_key_id TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN previous_until TEXT;
