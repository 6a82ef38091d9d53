-- Objects a key may name (issue 8): those it was issued for, and those created under its label.
ALTER TABLE keys ADD COLUMN allowed_objects TEXT NOT NULL DEFAULT '[]'; -- JSON array of ids
ALTER TABLE keys ADD COLUMN stripe_account TEXT; -- the only Stripe-Account the key may act as

-- Objects seen through the proxy: who created them, what they are worth, and
-- how much of that is already held against a key's cap.
CREATE TABLE objects (
    vendor      TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    label       TEXT NOT NULL, -- '' when the broker only looked the object up
    amount      BIGINT,        -- minor units, for objects that move money
    currency    TEXT,
    held_micros BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (vendor, object_id)
);
CREATE INDEX objects_label ON objects (label);
