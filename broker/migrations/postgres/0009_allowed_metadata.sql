-- Objects a key sees in answers by their Stripe metadata (issue 20): a JSON
-- object of string pairs that an object's metadata must all hold.
ALTER TABLE keys ADD COLUMN allowed_metadata TEXT NOT NULL DEFAULT '{}';
