-- Issue 24: the order check reads the PaymentIntents of an order made
-- through the broker from here, instead of scanning the account's list.

-- Each metadata pair of a PaymentIntent a create through the broker made
-- (its answer, or a declined create's `error.payment_intent`) that the
-- creating key's `allowed_metadata` holds (a key writes only its own
-- order's pairs), with the
-- Stripe account it was made on ('' for the platform's own) and Stripe's
-- `created` (in ms: the clock Stripe's list is read by). Rows are only
-- ever added; tidy deletes old ones.
CREATE TABLE object_pairs (
    vendor      TEXT NOT NULL,
    account     TEXT NOT NULL,
    kind        TEXT NOT NULL,   -- the object's type: 'payment_intent'
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (vendor, account, kind, name, value, object_id)
);
CREATE INDEX object_pairs_pair ON object_pairs (vendor, account, kind, name, value, created_at);
CREATE INDEX object_pairs_created ON object_pairs (created_at);

-- The metadata pairs of a create forwarded and not yet answered, committed
-- with its audit row before it is forwarded (the broker's clock): deleted
-- when its answer is known, kept when it never is (a timeout, a crash), so
-- that a lookup never calls the record whole while a create of the pair
-- may have made an object.
CREATE TABLE pending_pairs (
    request_id       TEXT NOT NULL,
    vendor           TEXT NOT NULL,
    account          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    name             TEXT NOT NULL,
    value            TEXT NOT NULL,
    -- As sent upstream (namespaced by label), '' without one: a later
    -- create with it that is answered with a PaymentIntent settles this one
    -- too, since Stripe makes one object per key.
    idempotency_key  TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (request_id, name)
);
CREATE INDEX pending_pairs_pair ON pending_pairs (vendor, account, kind, name, value, created_at);
CREATE INDEX pending_pairs_idempotency_key ON pending_pairs (idempotency_key);
CREATE INDEX pending_pairs_created ON pending_pairs (created_at);

-- The metadata pairs a PaymentIntent create carried that its key does not
-- own (a key without `allowed_metadata`, such as a charge without the order
-- check): each as a digest of name and value, at the broker's time, written
-- before forwarding. A lookup of such a pair in its time is not whole: the
-- record does not hold what that create made.
CREATE TABLE unowned_pairs (
    id          BIGSERIAL PRIMARY KEY,
    vendor      TEXT NOT NULL,
    account     TEXT NOT NULL,
    digest      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX unowned_pairs_digest ON unowned_pairs (vendor, account, digest, created_at);
CREATE INDEX unowned_pairs_created ON unowned_pairs (created_at);

-- Set on every audit row a broker that records pairs writes. A
-- PaymentIntent create's row without it is one a broker of an earlier
-- release forwarded (one still running beside upgraded ones), whose pairs
-- the record does not hold: the trigger notes when, so that a lookup over
-- that time is not called whole. (No index on the audit is built: that
-- would lock its writes while the brokers still serving wait.)
ALTER TABLE audit ADD COLUMN records_pairs SMALLINT;
CREATE TABLE unrecorded_creates (
    id          BIGSERIAL PRIMARY KEY,
    created_at  BIGINT NOT NULL
);
CREATE INDEX unrecorded_creates_created ON unrecorded_creates (created_at);
-- Nothing before now is recorded (an earlier release's create in flight
-- finishes with an update, which the trigger below does not see): a lookup
-- over this time is not whole.
-- (On a database that has served requests: any audit row, object or key,
-- each kept past any create of the last minutes; a new one has nothing before.)
INSERT INTO unrecorded_creates (created_at)
  SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)
  WHERE EXISTS (SELECT 1 FROM audit) OR EXISTS (SELECT 1 FROM objects) OR EXISTS (SELECT 1 FROM keys);
CREATE FUNCTION audit_unrecorded_create() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO unrecorded_creates (created_at) VALUES (NEW.at);
  RETURN NEW;
END;
$$;
-- The condition in WHEN, not in the function: a row of this release queues
-- no trigger event at all (a plpgsql call on every audit insert cost a
-- fifth of the creates a role's keys made through two brokers, measured).
CREATE TRIGGER audit_unrecorded_create AFTER INSERT ON audit
  FOR EACH ROW
  WHEN (NEW.records_pairs IS NULL AND NEW.method = 'POST' AND NEW.path = '/v1/payment_intents')
  EXECUTE FUNCTION audit_unrecorded_create();
