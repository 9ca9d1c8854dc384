-- A hub.db of schema version 3 (tether-hub before operator roles): agent edge-1,
-- one admin token (its plaintext is in hub_audit_test.cpp), a registration token, one
-- queued task. Made with that version's tether-hub and dumped with sqlite3 .dump.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES(3);
CREATE TABLE agents (
  name               TEXT PRIMARY KEY,
  token_sha256       TEXT NOT NULL,
  created_at         TEXT NOT NULL,
  last_seen_at       TEXT,
  version            TEXT,
  outbox_rows        INTEGER,
  outbox_bytes       INTEGER,
  outbox_reported_at TEXT
);
INSERT INTO agents VALUES('edge-1','7e3940a798dfef45aac4c5e95fcc96a9e0ea503ca86d2087f24982443e641b8a','2026-11-30T09:20:13.930Z',NULL,NULL,NULL,NULL,NULL);
CREATE TABLE admin_tokens (
  token_sha256 TEXT PRIMARY KEY,
  created_at   TEXT NOT NULL
);
INSERT INTO admin_tokens VALUES('48c9a5377f413a934b84c48e8e0f03c8522d12d774da821375b6ab4da052101a','2026-11-30T09:20:13.945Z');
CREATE TABLE tasks (
  id                 TEXT PRIMARY KEY,
  agent              TEXT NOT NULL,
  state              TEXT NOT NULL,
  command_json       TEXT NOT NULL,
  env_json           TEXT NOT NULL,
  cwd                TEXT NOT NULL DEFAULT '',
  timeout_s          INTEGER NOT NULL DEFAULT 0,
  target             TEXT NOT NULL DEFAULT '',
  max_attempts       INTEGER NOT NULL DEFAULT 1,
  attempts_made      INTEGER NOT NULL DEFAULT 0,
  current_attempt    TEXT,
  cancel_requested   INTEGER NOT NULL DEFAULT 0,
  cancel_reason      TEXT,
  final_json         TEXT,
  output_verified    INTEGER,
  verification_error TEXT,
  created_at         TEXT NOT NULL,
  updated_at         TEXT NOT NULL
);
INSERT INTO tasks VALUES('t-2c71af80b9bec5d6','edge-1','queued','{"argv":["echo","from version 3"]}','{"KEPT":"yes"}','',0,'',1,0,NULL,0,NULL,NULL,NULL,NULL,'2026-11-30T09:20:14.110Z','2026-11-30T09:20:14.110Z');
CREATE TABLE attempts (
  id                TEXT PRIMARY KEY,
  task_id           TEXT NOT NULL REFERENCES tasks (id),
  agent             TEXT NOT NULL,
  number            INTEGER NOT NULL,
  state             TEXT NOT NULL,
  dispatched_at     TEXT NOT NULL,
  dispatched_at_ms  INTEGER NOT NULL,
  started_at        TEXT,
  finished_at       TEXT,
  pid               INTEGER,
  final_json        TEXT,
  final_fingerprint TEXT,
  lost_reason       TEXT,
  agent_instance    TEXT              -- the agent process the poll came from, if it said
);
CREATE TABLE events (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id        TEXT NOT NULL,
  attempt_id     TEXT,
  kind           TEXT NOT NULL,
  state          TEXT,
  stream         TEXT,
  seq            INTEGER,
  byte_offset    INTEGER,
  length         INTEGER,
  data           BLOB,
  payload        TEXT,
  stored_at      TEXT NOT NULL,
  stored_at_us   INTEGER NOT NULL
);
INSERT INTO events VALUES(1,'t-2c71af80b9bec5d6',NULL,'status','queued',NULL,NULL,NULL,NULL,NULL,'{"task_id":"t-2c71af80b9bec5d6","state":"queued","attempt_id":null,"at":"2026-11-30T09:20:14.110Z"}','2026-11-30T09:20:14.110Z',1796030414110339);
CREATE TABLE registration_tokens (
  id           TEXT PRIMARY KEY,
  token_sha256 TEXT NOT NULL UNIQUE,
  created_at   TEXT NOT NULL,
  expires_at   TEXT,
  revoked_at   TEXT,
  registered   INTEGER NOT NULL DEFAULT 0,
  labels       TEXT NOT NULL DEFAULT ''  -- given to every agent it registers
);
INSERT INTO registration_tokens VALUES('reg-0d171c4857e0','0d171c4857e03d5388bc6e83240f47648ccc614dffe98acdb48edcc24b036b47','2026-11-30T09:20:13.953Z',NULL,NULL,0,'role=web');
CREATE TABLE agent_labels (
  agent TEXT NOT NULL,
  key   TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (agent, key)
);
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('events',1);
CREATE INDEX tasks_by_agent_state ON tasks (agent, state, created_at);
CREATE INDEX tasks_by_state ON tasks (state, created_at);
CREATE INDEX attempts_by_state ON attempts (state);
CREATE INDEX attempts_by_task ON attempts (task_id, number);
CREATE INDEX events_by_task ON events (task_id, id);
CREATE UNIQUE INDEX events_by_stream
  ON events (attempt_id, stream, seq) WHERE stream IS NOT NULL;
COMMIT;
