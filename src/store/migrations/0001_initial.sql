-- landwatch store, schema version 1.
-- Times are RFC 3339 UTC text; JSON columns hold JSON text.

-- One row per run of `landwatch scan`.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,                 -- run-YYYYMMDDTHHMMSSZ-xxxx
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'done_with_skips', 'failed', 'interrupted')),
    config_sha256 TEXT NOT NULL,
    grid_fingerprint TEXT NOT NULL,
    full INTEGER NOT NULL CHECK (full IN (0, 1)),
    software_version TEXT NOT NULL,
    args TEXT NOT NULL,                  -- JSON
    cells_processed INTEGER,
    cells_skipped_unchanged INTEGER,
    findings INTEGER,
    new_cases INTEGER,
    updated_cases INTEGER,
    disappeared_cases INTEGER,
    unobserved_protected_m2 REAL,
    skipped_inputs INTEGER
);

-- Every imagery file seen, by path and content hash.
CREATE TABLE imagery (
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    acquired_at TEXT,
    date_role TEXT NOT NULL CHECK (date_role IN ('before', 'after')),
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (path, sha256)
);
CREATE INDEX imagery_sha256 ON imagery (sha256);

-- The cells a run processed successfully, with the keys that say what they were processed from.
CREATE TABLE cells (
    run_id TEXT NOT NULL REFERENCES runs (id),
    cell_id TEXT NOT NULL,
    after_key TEXT NOT NULL,
    inputs_key TEXT NOT NULL,
    PRIMARY KEY (run_id, cell_id)
);
CREATE INDEX cells_cell ON cells (cell_id);

-- Cases: one suspected violation followed over time under a stable id.
CREATE TABLE cases (
    id TEXT PRIMARY KEY,                 -- <region>-<YYYYMMDD>-<NNNN>
    region_code TEXT NOT NULL,
    parcel_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'disappeared', 'merged', 'confirmed', 'dismissed', 'referred')),
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    transition TEXT NOT NULL,
    area_m2 REAL NOT NULL,
    confidence REAL NOT NULL,
    after_date TEXT,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    first_run_id TEXT NOT NULL REFERENCES runs (id),
    last_run_id TEXT NOT NULL REFERENCES runs (id),
    last_finding_id TEXT NOT NULL,
    cells TEXT NOT NULL,                 -- JSON array of cell ids
    geometry_wkt TEXT NOT NULL,          -- latest change polygon, working CRS
    merged_into TEXT REFERENCES cases (id)
);
CREATE INDEX cases_parcel ON cases (parcel_id);
CREATE INDEX cases_status ON cases (status);

-- Case lineage: a case split from or merged from its parents.
CREATE TABLE case_parents (
    case_id TEXT NOT NULL REFERENCES cases (id),
    parent_id TEXT NOT NULL REFERENCES cases (id),
    relation TEXT NOT NULL CHECK (relation IN ('split', 'merge')),
    run_id TEXT NOT NULL REFERENCES runs (id),
    PRIMARY KEY (case_id, parent_id)
);
CREATE INDEX case_parents_parent ON case_parents (parent_id);

-- Every geometry a case had, one per run that saw it.
CREATE TABLE case_geometries (
    case_id TEXT NOT NULL REFERENCES cases (id),
    run_id TEXT NOT NULL REFERENCES runs (id),
    finding_id TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    area_m2 REAL NOT NULL,
    geometry_wkt TEXT NOT NULL,
    PRIMARY KEY (case_id, run_id)
);

-- The findings of each run, each assigned to a case.
CREATE TABLE findings (
    run_id TEXT NOT NULL REFERENCES runs (id),
    finding_id TEXT NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (id),
    parcel_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    transition TEXT NOT NULL,
    area_m2 REAL NOT NULL,
    confidence REAL NOT NULL,
    cells TEXT NOT NULL,                 -- JSON array
    after_date TEXT,
    geometry_wkt TEXT NOT NULL,
    properties TEXT NOT NULL,            -- JSON
    PRIMARY KEY (run_id, finding_id)
);
CREATE INDEX findings_case ON findings (case_id);

-- The audit log: who did what to a case, when and why (runs write as 'landwatch').
CREATE TABLE case_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL REFERENCES cases (id),
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    what TEXT NOT NULL,
    why TEXT NOT NULL,
    run_id TEXT REFERENCES runs (id),
    from_status TEXT,
    to_status TEXT,
    related_case TEXT REFERENCES cases (id)
);
CREATE INDEX case_events_case ON case_events (case_id);

-- Evidence packet versions written for a case.
CREATE TABLE packets (
    case_id TEXT NOT NULL REFERENCES cases (id),
    version INTEGER NOT NULL CHECK (version >= 1),
    dir TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs (id),
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (case_id, version)
);

-- The last case sequence number used per region and day.
CREATE TABLE case_sequences (
    region_code TEXT NOT NULL,
    day TEXT NOT NULL,                   -- YYYYMMDD
    last INTEGER NOT NULL,
    PRIMARY KEY (region_code, day)
);
