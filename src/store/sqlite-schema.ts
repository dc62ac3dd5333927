import type { Database } from 'better-sqlite3';

/*
 * `seq` is the rowid: one writer appends, so it grows strictly in commit order and is never reused (rows
 * are never deleted).
 *
 * Dedup does not index the text key (topic, event_id): random ids make that a wide B-tree that every
 * insert lands in at a random page. Each event carries `key_hash`, a 53-bit hash of its key, and the
 * consumer keeps hash → first seq in memory (src/store/key-index.ts), rebuilt from this column at start,
 * so the events table is only ever appended to. A hash that is already taken is checked against the
 * stored event's real key; the rare different key that shares a hash goes to `colliding_keys`, indexed
 * by its full text.
 *
 * Counters and per-topic totals live in their own rows, updated in the same transaction as the events,
 * so they survive restarts and always equal the store. `ring_checkpoint` records how far into the ring
 * the last commit reached. `consumers` holds the durable consumers' committed positions.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE events (
     seq         INTEGER PRIMARY KEY,
     key_hash    INTEGER NOT NULL,
     topic       TEXT NOT NULL,
     event_id    TEXT NOT NULL,
     timestamp   TEXT NOT NULL,
     source      TEXT NOT NULL,
     payload     TEXT NOT NULL,
     received_at TEXT NOT NULL
   );
   CREATE INDEX events_by_topic ON events (topic, seq);
   CREATE TABLE colliding_keys (
     topic    TEXT NOT NULL,
     event_id TEXT NOT NULL,
     seq      INTEGER NOT NULL,
     PRIMARY KEY (topic, event_id)
   ) WITHOUT ROWID;
   CREATE TABLE topics (topic TEXT PRIMARY KEY, events INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE counters (
     id                INTEGER PRIMARY KEY CHECK (id = 1),
     unique_processed  INTEGER NOT NULL,
     duplicate_dropped INTEGER NOT NULL
   );
   INSERT INTO counters VALUES (1, 0, 0);
   CREATE TABLE ring_checkpoint (
     id       INTEGER PRIMARY KEY CHECK (id = 1),
     epoch    TEXT NOT NULL,
     position INTEGER NOT NULL
   );`,
  // Durable consumers (src/store/consumers.ts): topics as a JSON array, NULL for every topic.
  `CREATE TABLE consumers (
     name           TEXT PRIMARY KEY,
     topics         TEXT,
     start          TEXT NOT NULL,
     position       INTEGER NOT NULL,
     created_at     TEXT NOT NULL,
     last_commit_at TEXT
   ) WITHOUT ROWID;`,
  // /events/stream?since= finds the first event received at or after a time without reading every row.
  'CREATE INDEX events_by_received_at ON events (received_at, seq);',
];

/** Brings the schema up to date; `user_version` counts the migrations applied. */
export function migrate(db: Database): void {
  const applied = db.pragma('user_version', { simple: true }) as number;
  for (let version = applied; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
