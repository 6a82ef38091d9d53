-- Issue 21: roles. A role bounds every key issued with one of its tokens;
-- a process (the worker) holds a role token, never the admin token.
CREATE TABLE roles (
    name                  TEXT PRIMARY KEY,
    vendor                TEXT NOT NULL,
    label_prefix          TEXT NOT NULL,
    allowed_endpoints     TEXT NOT NULL,             -- JSON list of `METHOD PATH` patterns
    max_key_cap_micros    BIGINT NOT NULL,           -- largest cap of one key
    daily_cap_micros      BIGINT NOT NULL,           -- all its keys together, per UTC day
    max_expires_in_s      BIGINT NOT NULL,           -- longest TTL of one key
    stripe_accounts       TEXT NOT NULL DEFAULT '[]', -- JSON: accounts a key may act as; [] the platform only
    allow_allowed_objects BIGINT NOT NULL DEFAULT 0,
    allow_allowed_metadata BIGINT NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL
);

-- A role's tokens, stored hashed; the token is shown once, when issued.
CREATE TABLE role_tokens (
    id         TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);

-- What a role's keys together hold against its daily cap, per UTC day.
CREATE TABLE role_spend (
    role   TEXT NOT NULL,
    period TEXT NOT NULL,
    micros BIGINT NOT NULL,
    PRIMARY KEY (role, period)
);

-- Which role issued a key, and with which token (NULL: the admin token).
ALTER TABLE keys ADD COLUMN role TEXT;
ALTER TABLE keys ADD COLUMN issued_by TEXT;
CREATE INDEX keys_role ON keys (role);
