-- Issue 25: retention, and the audit followed by a cursor.

-- The order `GET /v1/audit?after=` pages the audit in: a row gets its
-- `seq` when it is final (answered, or marked lost by tidy), never while a
-- money request is in flight, so a collector reads each row once, as it
-- stays. One broker process writes a SQLite file, one commit at a time, so
-- a counter that only grows orders rows as they were committed; it is a
-- table of its own so that deleting old rows never lowers it.
ALTER TABLE audit ADD COLUMN seq BIGINT;
CREATE TABLE audit_sequence (n BIGINT NOT NULL);
UPDATE audit SET seq = id WHERE status <> 0;
INSERT INTO audit_sequence (n) SELECT COALESCE(MAX(id), 0) FROM audit;
CREATE INDEX audit_seq ON audit (seq, id);
CREATE TRIGGER audit_final_on_insert AFTER INSERT ON audit
  WHEN NEW.seq IS NULL AND (NEW.status <> 0 OR NEW.code IS NOT 'in_flight')
BEGIN
  UPDATE audit_sequence SET n = n + 1;
  UPDATE audit SET seq = (SELECT n FROM audit_sequence) WHERE id = NEW.id;
END;
-- A row marked lost that is answered after all is final anew: it is
-- followed again, as answered (the body and upstream timeouts keep a live
-- request far below the hour after which tidy marks it).
CREATE TRIGGER audit_final_on_update AFTER UPDATE OF status, code ON audit
  WHEN (NEW.seq IS NULL OR (OLD.status = 0 AND NEW.status <> 0))
   AND (NEW.status <> 0 OR NEW.code IS NOT 'in_flight')
BEGIN
  UPDATE audit_sequence SET n = n + 1;
  UPDATE audit SET seq = (SELECT n FROM audit_sequence) WHERE id = NEW.id;
END;

-- What retention reads: rows by age, keys by when they ended and by the
-- namespace (role and label) their objects are claimed under, holds by key.
CREATE INDEX audit_at ON audit (at);
-- Rows in flight, which tidy looks for among all the old ones, and by key
-- (a key with a request in flight is kept).
CREATE INDEX audit_in_flight ON audit (at) WHERE status = 0;
CREATE INDEX audit_in_flight_key ON audit (key_id) WHERE status = 0;
ALTER TABLE keys ADD COLUMN namespace TEXT;
UPDATE keys SET namespace = CASE WHEN role IS NULL THEN label ELSE role || ' ' || label END;
CREATE INDEX keys_namespace ON keys (namespace);
CREATE INDEX keys_expires ON keys (expires_at);
CREATE INDEX keys_revoked ON keys (revoked_at);
CREATE INDEX objects_held_key ON objects (held_key);
CREATE INDEX objects_created ON objects (created_at);
CREATE INDEX idempotent_requests_at ON idempotent_requests (at);
