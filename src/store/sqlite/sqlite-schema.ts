import type { Database } from 'better-sqlite3';
import type { IncomingEvent } from '../../event.js';

/**
 * What `topics.bytes` counts of each retained event: the UTF-8 bytes of these columns (an RFC 3339
 * timestamp is ASCII). The one definition: a commit adds eventBytes in JS, a purge subtracts EVENT_BYTES_SQL,
 * and the migration that introduced the column summed EVENT_BYTES_SQL.
 */
const COUNTED_COLUMNS = { event_id: 'eventId', source: 'source', payload: 'payload', timestamp: 'timestamp' } as const;
const COUNTED_FIELDS = Object.values(COUNTED_COLUMNS);

export const EVENT_BYTES_SQL = Object.keys(COUNTED_COLUMNS).map((column) => `length(CAST(${column} AS BLOB))`).join(' + ');

export function eventBytes(event: Pick<IncomingEvent, (typeof COUNTED_FIELDS)[number]>): number {
  let bytes = 0;
  for (const field of COUNTED_FIELDS) bytes += Buffer.byteLength(event[field]);
  return bytes;
}

/*
 * `seq` is the rowid: one writer appends, so it grows strictly in commit order and is never reused
 * (retention deletes rows, but `topics.last_seq` outlives them, see below).
 *
 * Dedup does not index the text key (topic, event_id): random ids make that a wide B-tree that every
 * insert lands in at a random page. Each event carries `key_hash`, a 53-bit hash of its key, and the
 * writer keeps hash → first seq in its dedup index (src/store/sqlite/dedup/: the newest keys in memory, older
 * ones in sealed segment files), so the events table is only ever appended to. A hash that is already taken is checked against the
 * stored event's real key; the rare different key that shares a hash goes to `colliding_keys`, indexed
 * by its full text.
 *
 * Counters and per-topic totals live in their own rows, updated in the same transaction as the events,
 * so they survive restarts and always equal the store. The counters' row also records how far into the
 * ring the last commit reached (`ring_epoch`, `ring_position`). `consumers` holds the durable consumers'
 * committed positions.
 *
 * Retention deletes events rows (bodies) but never forgets a key: the key of a purged event moves to
 * `purged_keys` (seq → key), also append-only, so "the key stored at seq s" is always events ∪ purged_keys,
 * until DEDUP_WINDOW deletes both. The in-memory index covers only the newest keys; older ones are sealed
 * into immutable files of sorted (hash, seq) pairs with a Bloom filter each, listed in `key_segments` with
 * the seq range they cover (any file can be rebuilt from the rows of its range). Per topic, `topics` keeps
 * the retained events, their bytes (EVENT_BYTES_SQL), the last seq stored (which
 * outlives its event, so seqs are never reused after a purge emptied the table), and `purged_through`, the
 * highest seq purged (readers behind it are told). `purges` is the last purge. The retained seq range is
 * read from events_by_topic, not kept.
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
  // Retention and the sealed dedup index (src/store/sqlite/dedup/): see the block comment above.
  `ALTER TABLE topics ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE topics ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE topics ADD COLUMN purged_through INTEGER NOT NULL DEFAULT 0;
   UPDATE topics SET (bytes, last_seq) = (
     SELECT coalesce(sum(${EVENT_BYTES_SQL}), 0),
            coalesce(max(seq), 0)
     FROM events WHERE events.topic = topics.topic);
   CREATE TABLE purged_keys (
     seq         INTEGER PRIMARY KEY,
     key_hash    INTEGER NOT NULL,
     topic       TEXT NOT NULL,
     event_id    TEXT NOT NULL,
     received_at TEXT NOT NULL
   );
   CREATE TABLE key_segments (
     id        INTEGER PRIMARY KEY,
     first_seq INTEGER NOT NULL,
     last_seq  INTEGER NOT NULL,
     keys      INTEGER NOT NULL,
     file      TEXT NOT NULL
   );
   -- Readers ask for the highest purge horizon of every topic: an index answers without scanning topics.
   CREATE INDEX topics_by_purged ON topics (purged_through);
   CREATE TABLE purges (
     id         INTEGER PRIMARY KEY CHECK (id = 1),
     at         TEXT NOT NULL,
     events     INTEGER NOT NULL,
     duration_ms REAL NOT NULL,
     total      INTEGER NOT NULL
   );`,
  // The ring checkpoint joins the counters' row, which every commit updates anyway: one page fewer for
  // each commit to write to the WAL (of ~6 for a one-event batch).
  `ALTER TABLE counters ADD COLUMN ring_epoch TEXT;
   ALTER TABLE counters ADD COLUMN ring_position INTEGER;
   UPDATE counters SET ring_epoch = (SELECT epoch FROM ring_checkpoint), ring_position = (SELECT position FROM ring_checkpoint);
   DROP TABLE ring_checkpoint;`,
  // A consumer belongs to the access token that created it (AUTH_TOKENS_FILE); NULL: created without one.
  'ALTER TABLE consumers ADD COLUMN owner TEXT;',
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
