-- landwatch store, schema version 2: where each run's cells came from.
-- A run's cells are either detected (imagery read, detector run) or re-judged from the
-- detection cache (`<out>/cache/detect`); runs recorded before version 2 leave both NULL.
ALTER TABLE runs ADD COLUMN cells_detected INTEGER;
ALTER TABLE runs ADD COLUMN cells_from_cache INTEGER;
