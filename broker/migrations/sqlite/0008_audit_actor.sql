-- Issue 20: admin calls are audited with who made them. `actor` is the id
-- of the admin token used (`admin-` and the first 12 hex digits of its
-- SHA-256), never the token; NULL on rows of proxied requests, whose actor
-- is their key.
ALTER TABLE audit ADD COLUMN actor TEXT;
