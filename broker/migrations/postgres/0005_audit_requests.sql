-- How many requests an audit row stands for (issue 20): 1 for a request made
-- with a key; N for the summary of N requests that named no valid key (an
-- unknown token, vendor or method, a malformed path), written once per kind
-- per interval instead of one durable write each.
ALTER TABLE audit ADD COLUMN requests BIGINT NOT NULL DEFAULT 1;
