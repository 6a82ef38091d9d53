-- Issue 25: retention, and the audit followed by a cursor.

-- The order `GET /v1/audit?after=` pages the audit in: a row gets its
-- `seq` when it is final (answered, or marked lost by tidy), never while a
-- money request is in flight, so a collector reads each row once, as it
-- stays. Brokers sharing this database commit concurrently, so a sequence
-- would not follow commit order; `seq` is the id of the transaction that
-- made the row final, and a reader returns only rows whose transaction is
-- older than every one still running (`pg_snapshot_xmin`): whatever commits
-- later sorts after what was read. Rows final before this migration sort first.
ALTER TABLE audit ADD COLUMN seq BIGINT;
UPDATE audit SET seq = 0 WHERE status <> 0;
CREATE INDEX audit_seq ON audit (seq, id);
CREATE FUNCTION audit_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- A row marked lost that is answered after all is final anew: it is
  -- followed again, as answered.
  IF (NEW.seq IS NULL OR (TG_OP = 'UPDATE' AND OLD.status = 0 AND NEW.status <> 0))
     AND (NEW.status <> 0 OR NEW.code IS DISTINCT FROM 'in_flight') THEN
    NEW.seq := pg_current_xact_id()::text::bigint;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER audit_final BEFORE INSERT OR UPDATE ON audit
  FOR EACH ROW EXECUTE FUNCTION audit_final();

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
-- A broker of an earlier release, still running beside upgraded ones during
-- a rolling upgrade, writes keys without it.
CREATE FUNCTION keys_namespace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.namespace IS NULL THEN
    NEW.namespace := CASE WHEN NEW.role IS NULL THEN NEW.label ELSE NEW.role || ' ' || NEW.label END;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER keys_namespace BEFORE INSERT ON keys FOR EACH ROW EXECUTE FUNCTION keys_namespace();
CREATE INDEX keys_expires ON keys (expires_at);
CREATE INDEX keys_revoked ON keys (revoked_at);
CREATE INDEX objects_held_key ON objects (held_key);
CREATE INDEX objects_created ON objects (created_at);
CREATE INDEX idempotent_requests_at ON idempotent_requests (at);
