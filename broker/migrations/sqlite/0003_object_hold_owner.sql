-- The spend row an object's hold was reserved in: `<key id>/<period>`
-- (a period is `life`, or a UTC day). A hold pays only for that key in that
-- period: a key whose cap is daily cannot stage objects over several days
-- and move them all on one, and a second key of the same label cannot
-- confirm the first key's objects on the first key's reservation. NULL for
-- holds made before this column: they pay for nothing.
ALTER TABLE objects ADD COLUMN held_for TEXT;
