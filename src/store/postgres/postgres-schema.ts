import type pg from 'pg';
import { withConnection } from './postgres-transaction.js';

/** Advisory lock key (arbitrary, fixed) that replicas take turns on while they create or migrate the schema. */
const MIGRATION_LOCK = 7_203_111;
/** Advisory lock key that creating a consumer holds for its transaction, so replicas cannot pass MAX_CONSUMERS together. */
export const CONSUMER_CREATE_LOCK = 7_203_112;
/** Advisory lock key that a purge step holds for its transaction, so replicas purge one at a time. */
export const PURGE_LOCK = 7_203_113;

/*
 * Paging that never skips. `seq` is derived from the inserting transaction's id and the event's position in
 * its batch: seq = xid * 2^SEQ_BATCH_BITS + position. Replicas commit in parallel, so transactions commit
 * out of xid order; a reader therefore returns only rows whose xid is below the oldest transaction still in
 * flight (the xmin of its snapshot, leaving out other databases' transactions: see SEQ_HORIZON). Every
 * transaction of this database below that horizon has ended, so no row can later
 * appear below a seq a reader has already passed. (A sequence would hand out numbers at insert, not at
 * commit, and skip rows; see docs/scale-out.md.) With 14 bits for the position, seq stays below 2^53 (a
 * JSON-exact integer) for 2^39 transactions.
 */
export const SEQ_BATCH_BITS = 14;
/** The most events one batch may hold: its positions must fit in SEQ_BATCH_BITS. */
export const MAX_PG_BATCH = 2 ** SEQ_BATCH_BITS - 1;
/*
 * Transaction ids are the cluster's, not the database's: the snapshot's oldest running transaction may be one
 * of another database on the same server (another application's long job), whose rows can never be ours. So
 * the horizon skips running transactions that pg_stat_activity shows in another database. Only positively
 * foreign ones are skipped: one that ended since the snapshot, or that the activity view does not show, holds
 * the horizon as before, which is safe (a horizon held too low only delays rows). The view is read with
 * everyone's rights (backend_xid and datid are shown to every role) and compared on the 32 bits it holds:
 * running transactions lie within 2^31 of each other, so those bits name one of them.
 */
const FOREIGN_XIDS = `SELECT backend_xid::text::bigint FROM pg_stat_activity
  WHERE backend_xid IS NOT NULL AND datid IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database())`;
/** SQL: the first seq no reader may return yet (the commit horizon): the oldest of this database's running transactions in the snapshot, else its xmax. */
export const SEQ_HORIZON = `(SELECT coalesce(
    (SELECT min(xip::text::bigint) FROM pg_snapshot_xip(s.snap) AS xip WHERE (xip::text::bigint & 4294967295) NOT IN (${FOREIGN_XIDS})),
    pg_snapshot_xmax(s.snap)::text::bigint) << ${SEQ_BATCH_BITS}
  FROM (SELECT pg_current_snapshot() AS snap) s)`;
/** SQL: the current transaction's id as a bigint, and the seq base of its rows. */
export const XID = 'pg_current_xact_id()::text::bigint';
export const SEQ_BASE = `(${XID} << ${SEQ_BATCH_BITS})`;

/** SQL: the UTC ISO text (as received_at holds) of PostgreSQL's clock minus `ms` milliseconds: one clock for every replica. */
export const agoSql = (ms: string): string =>
  `to_char((statement_timestamp() - ${ms} * interval '1 millisecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** NOTIFY channel raised by every commit that stored rows: a data-free wake-up for every replica's subscribers. */
export const COMMIT_CHANNEL = 'pubsub_aggregator_commits';

/*
 * PostgreSQL text cannot hold NUL, which an event_id may contain, so the unique key column holds the id
 * escaped injectively (backslash doubled, NUL as \0) and `doc` holds the event exactly, as the JSON that
 * /events serves. Counters and per-topic totals are one row per replica, so replicas never contend for a
 * hot row; store-wide figures are sums. `topic_counts.changed` is the seq base of the transaction that last
 * changed the row (0 for rows from before the column existed), so a replica re-reads only the topics that
 * changed since its last look (see PostgresEventStore.changes). `ring_checkpoints` is per replica, like the ring it describes, and
 * names the transaction of the last batch, so a commit whose outcome was lost with the connection can be
 * looked up instead of retried blindly. A replica commits on several connections at once (PG_WRITE_CONNECTIONS),
 * each a `lane`: counters, topic totals and checkpoints are one row per replica and lane, so even one
 * replica's concurrent commits never wait for each other's hot rows. They commit in ring order, so the
 * highest position of the replica's lanes is its checkpoint. `consumers` holds the durable consumers (topics NULL: every topic), shared
 * by every replica, so a consumer committed through one continues on another.
 * `received_at` repeats the doc's (UTC ISO text, which sorts as time) so that /events/stream?since= finds its
 * start through an index; a store from before the column gets it filled once, from the docs.
 *
 * Retention (see postgres-purge.ts): a purged event keeps its row, with `doc` NULL, as its key's tombstone,
 * so the unique constraint goes on deciding duplicates; every read skips tombstones through the partial
 * indexes on retained rows (`doc IS NOT NULL`), so reads never wade through what was purged.
 * `topic_counts` holds retained events and their doc bytes; `replica_counters.keys_forgotten` the rows
 * DEDUP_WINDOW deleted (keys held = unique_processed - keys_forgotten); `topic_purges.purged_through` the
 * highest purged seq of a topic, every event of it at or below being gone; `purges` the last purge and
 * the total ever purged. A store from before these gains them at start, its bytes counted once from the docs.
 */
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS events (
    seq       bigint PRIMARY KEY,
    topic     text NOT NULL,
    event_key text NOT NULL,
    doc       text NOT NULL,
    replica   text NOT NULL,
    received_at text NOT NULL,
    UNIQUE (topic, event_key)
  );
  DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'events' AND column_name = 'received_at') THEN
      ALTER TABLE events ADD COLUMN received_at text;
      UPDATE events SET received_at = doc::json->>'received_at';
      ALTER TABLE events ALTER COLUMN received_at SET NOT NULL;
    END IF;
  END $$;
  CREATE INDEX IF NOT EXISTS events_by_received_at ON events (received_at, seq);
  DO $$ BEGIN
    -- Only once: ALTER TABLE locks out every reader and writer of events while it runs.
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'events'
               AND column_name = 'doc' AND is_nullable = 'NO') THEN
      ALTER TABLE events ALTER COLUMN doc DROP NOT NULL;
    END IF;
  END $$;
  CREATE INDEX IF NOT EXISTS events_retained ON events (seq) WHERE doc IS NOT NULL;
  CREATE INDEX IF NOT EXISTS events_retained_by_topic ON events (topic, seq) WHERE doc IS NOT NULL;
  DROP INDEX IF EXISTS events_by_topic;
  CREATE TABLE IF NOT EXISTS replica_counters (
    replica           text PRIMARY KEY,
    unique_processed  bigint NOT NULL,
    duplicate_dropped bigint NOT NULL
  );
  CREATE TABLE IF NOT EXISTS topic_counts (
    topic   text NOT NULL,
    replica text NOT NULL,
    events  bigint NOT NULL,
    PRIMARY KEY (topic, replica)
  );
  ALTER TABLE topic_counts ADD COLUMN IF NOT EXISTS changed bigint NOT NULL DEFAULT 0;
  CREATE INDEX IF NOT EXISTS topic_counts_by_change ON topic_counts (changed);
  ALTER TABLE replica_counters ADD COLUMN IF NOT EXISTS keys_forgotten bigint NOT NULL DEFAULT 0;
  DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'topic_counts' AND column_name = 'bytes') THEN
      ALTER TABLE topic_counts ADD COLUMN bytes bigint NOT NULL DEFAULT 0;
      UPDATE topic_counts t SET bytes = s.bytes
      FROM (SELECT topic, replica, sum(octet_length(doc)) AS bytes FROM events GROUP BY topic, replica) s
      WHERE t.topic = s.topic AND t.replica = s.replica;
    END IF;
  END $$;
  CREATE TABLE IF NOT EXISTS topic_purges (
    topic          text PRIMARY KEY,
    purged_through bigint NOT NULL
  );
  CREATE TABLE IF NOT EXISTS purges (
    id          int PRIMARY KEY CHECK (id = 1),
    at          text NOT NULL,
    events      bigint NOT NULL,
    duration_ms double precision NOT NULL,
    total       bigint NOT NULL
  );
  CREATE TABLE IF NOT EXISTS ring_checkpoints (
    replica  text PRIMARY KEY,
    epoch    text NOT NULL,
    position bigint NOT NULL,
    xid      bigint NOT NULL
  );
  CREATE TABLE IF NOT EXISTS consumers (
    name           text PRIMARY KEY,
    topics         text[],
    start          text NOT NULL,
    position       bigint NOT NULL,
    created_at     text NOT NULL,
    last_commit_at text
  );
  -- A consumer belongs to the access token that created it (AUTH_TOKENS_FILE); NULL: created without one.
  ALTER TABLE consumers ADD COLUMN IF NOT EXISTS owner text;
  DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'ring_checkpoints' AND column_name = 'lane') THEN
      ALTER TABLE replica_counters ADD COLUMN lane int NOT NULL DEFAULT 0, DROP CONSTRAINT replica_counters_pkey,
        ADD PRIMARY KEY (replica, lane);
      ALTER TABLE topic_counts ADD COLUMN lane int NOT NULL DEFAULT 0, DROP CONSTRAINT topic_counts_pkey,
        ADD PRIMARY KEY (topic, replica, lane);
      ALTER TABLE ring_checkpoints ADD COLUMN lane int NOT NULL DEFAULT 0, DROP CONSTRAINT ring_checkpoints_pkey,
        ADD PRIMARY KEY (replica, lane);
    END IF;
  END $$;`;

/** Creates the schema; safe when several replicas start at once (they take turns on an advisory lock). */
export function migrate(pool: pg.Pool): Promise<void> {
  // The session lock goes with the connection, which withConnection destroys if anything fails.
  return withConnection(pool, async (client) => {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(SCHEMA);
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
  });
}

/** The unique-key form of an event_id: injective, and free of the NUL that PostgreSQL text refuses. */
export function eventKey(eventId: string): string {
  return /[\\\0]/.test(eventId) ? eventId.replace(/\\/g, '\\\\').replace(/\0/g, '\\0') : eventId;
}
