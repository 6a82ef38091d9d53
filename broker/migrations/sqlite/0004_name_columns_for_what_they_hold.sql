-- Columns named for what they hold (issue 18).
-- `spend.day` holds a spend period: a UTC day (YYYY-MM-DD), or `life` for a
-- key that lives at most 24 h and counts its cap over its whole life.
ALTER TABLE spend RENAME COLUMN day TO period;

-- `objects.held_for` packed `<key id>/<period>` into one string: the key
-- whose reservation an object's hold is, and the period it was reserved in,
-- now each in a column. Key ids (`key_` and hex) never hold a `/`.
ALTER TABLE objects ADD COLUMN held_key TEXT;
ALTER TABLE objects ADD COLUMN held_period TEXT;
UPDATE objects
   SET held_key = substr(held_for, 1, instr(held_for, '/') - 1),
       held_period = substr(held_for, instr(held_for, '/') + 1)
 WHERE held_for IS NOT NULL AND instr(held_for, '/') > 0;
ALTER TABLE objects DROP COLUMN held_for;
