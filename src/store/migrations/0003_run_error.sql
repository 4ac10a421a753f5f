-- landwatch store, schema version 3: why a run failed.
-- A run that stopped with an error (status `failed`) keeps the error's text; other runs leave it NULL.
ALTER TABLE runs ADD COLUMN error TEXT;
