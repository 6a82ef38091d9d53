-- Times are unix milliseconds (UTC); amounts are micro-dollars. Same shape as the SQLite schema.
CREATE TABLE keys (
    id                TEXT PRIMARY KEY,
    token_hash        TEXT NOT NULL UNIQUE,
    label             TEXT NOT NULL,
    vendor            TEXT NOT NULL,
    daily_cap_micros  BIGINT NOT NULL,
    allowed_endpoints TEXT NOT NULL, -- JSON array of "METHOD PATH" strings
    metadata          TEXT NOT NULL, -- JSON object of strings
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    revoked_at        BIGINT
);
CREATE INDEX keys_label ON keys (label);

-- What each key has moved (or has in flight) on each UTC day.
CREATE TABLE spend (
    key_id TEXT NOT NULL REFERENCES keys (id),
    day    TEXT NOT NULL, -- YYYY-MM-DD, UTC
    micros BIGINT NOT NULL,
    PRIMARY KEY (key_id, day)
);

-- One row per proxied request, refused ones included.
CREATE TABLE audit (
    id              BIGSERIAL PRIMARY KEY,
    at              BIGINT NOT NULL,
    key_id          TEXT,
    label           TEXT,
    vendor          TEXT NOT NULL,
    method          TEXT NOT NULL,
    path            TEXT NOT NULL,
    status          BIGINT NOT NULL,
    code            TEXT,
    reserved_micros BIGINT NOT NULL,
    latency_ms      BIGINT NOT NULL
);
CREATE INDEX audit_key ON audit (key_id);
