-- Issue 20: a money request's audit row is written before it is forwarded,
-- in the commit of its reservation, and completed with the answer. The
-- request id joins the two writes; a row still `in_flight` after a crash
-- is a request that may have reached Stripe.
ALTER TABLE audit ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX audit_request ON audit (request_id);
