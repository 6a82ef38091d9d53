-- Issue 22: a library's retry of a money request (the same Idempotency-Key,
-- the same request) is Stripe's replay of the first, already counted: it is
-- forwarded without a new reservation while Stripe surely still holds the key.
CREATE TABLE idempotent_requests (
    label           TEXT NOT NULL,   -- the key label: the Idempotency-Key's namespace
    idempotency_key TEXT NOT NULL,   -- the client's key, as sent
    fingerprint     TEXT NOT NULL,   -- SHA-256 of method, path, parameters and account
    counted         BIGINT NOT NULL, -- 1: what it may move is counted (reservation kept or hold)
    at              BIGINT NOT NULL, -- when the counted request was sent (ms)
    PRIMARY KEY (label, idempotency_key)
);
