-- Issue 20: a price the broker read from Stripe for one request was kept and
-- used for later ones, after the amount had changed at Stripe. Prices are now
-- kept only from the broker's own writes; an object it only looked up (no
-- label) has its stored price forgotten, to be read again when next needed.
UPDATE objects SET amount = NULL, currency = NULL WHERE label = '';
