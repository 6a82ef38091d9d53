-- The spend period (`life`, or a UTC day) an object's hold was reserved in:
-- a hold made on an earlier day paid for that day, not for today, so a key
-- whose cap is daily cannot stage objects over several days and move them
-- all on one. NULL for holds made before this column: they count for nothing.
ALTER TABLE objects ADD COLUMN held_period TEXT;
