-- Issue 24: the order check reads the PaymentIntents of an order made
-- through the broker from here, instead of scanning the account's list.

-- Each metadata pair of a PaymentIntent the broker saw answered to a POST
-- (a create, or a declined create's PaymentIntent), under the broker's
-- clock when it was recorded. Rows are only ever added; tidy deletes old ones.
CREATE TABLE object_pairs (
    vendor      TEXT NOT NULL,
    kind        TEXT NOT NULL,   -- the object's type: 'payment_intent'
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (vendor, kind, name, value, object_id)
);
CREATE INDEX object_pairs_created ON object_pairs (created_at);

-- The metadata pairs of a create forwarded and not yet answered, committed
-- with its audit row before it is forwarded: deleted when its answer is
-- known, kept when it never is (a timeout, a crash), so that a lookup never
-- calls the record whole while a create of the pair may have made an object.
CREATE TABLE pending_pairs (
    request_id  TEXT NOT NULL,
    vendor      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (request_id, name)
);
CREATE INDEX pending_pairs_pair ON pending_pairs (vendor, kind, name, value, created_at);
CREATE INDEX pending_pairs_created ON pending_pairs (created_at);

-- Set by every broker that records pairs: an object row without it was
-- made by a broker of an earlier release (one still running beside
-- upgraded ones on PostgreSQL), whose creates the record does not hold.
ALTER TABLE objects ADD COLUMN pairs_recorded SMALLINT;
CREATE INDEX objects_unrecorded ON objects (created_at) WHERE pairs_recorded IS NULL AND label <> '';
