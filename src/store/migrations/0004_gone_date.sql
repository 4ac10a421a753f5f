-- landwatch store, schema version 4: the day a case was seen gone.
-- A case marked disappeared keeps the day of the imagery that no longer showed it (NULL when that
-- imagery had no date, or the case is not disappeared): imagery older than that day cannot
-- reopen it. A finding that continues the case clears it.
ALTER TABLE cases ADD COLUMN gone_date TEXT;
