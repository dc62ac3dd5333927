import type Database from 'better-sqlite3';
import { limitFor, type RetentionLimit, type RetentionPolicy } from '../../retention.js';
import type { PurgeReport } from '../store.js';
import { EVENT_BYTES_SQL } from './sqlite-schema.js';

/*
 * Retention on SQLite, in small steps run by the consumer between batches (it owns the one write
 * connection). A step takes the oldest events of one topic (events_by_topic), up to CHUNK of them, and
 * purges the prefix that is past the topic's age or count limit, in one transaction: their keys move to
 * `purged_keys` (so they stay duplicates — unless DEDUP_WINDOW forgot them already), their rows are
 * deleted, and the topic's figures and purge horizon are updated. Deleted pages go to SQLite's free list
 * and are reused by new rows, so at steady state the file stops growing. Topics are visited round-robin
 * by name; a round that purges nothing ends the work until the next one is due.
 */

const CHUNK = 1_000;
const TOPICS_PER_READ = 256;

interface OldRow {
  seq: number;
  key_hash: number;
  event_id: string;
  received_at: string;
  bytes: number;
}

/** What one call of `step` did. */
export interface PurgeStep {
  /** Retained events of each topic it purged from. */
  topicEvents: Map<string, number>;
  /** The current round is not finished. */
  pending: boolean;
}

export class SqliteRetention {
  private readonly statements;
  private readonly limits = new Map<string, RetentionLimit | undefined>();
  /** The last topic visited: the round-robin cursor ('' starts a round). */
  private cursor = '';
  private roundPurged = 0;
  private roundMs = 0;
  private last: PurgeReport | undefined;

  constructor(db: Database.Database, private readonly policy: RetentionPolicy) {
    this.statements = {
      topics: db.prepare<[string, number], [string, number]>(
        'SELECT topic, events FROM topics WHERE topic > ? ORDER BY topic LIMIT ?').raw(),
      oldest: db.prepare<[string, number], OldRow>(
        `SELECT seq, key_hash, event_id, received_at, ${EVENT_BYTES_SQL} AS bytes FROM events WHERE topic = ? ORDER BY seq LIMIT ?`),
      keepKey: db.prepare<[number, number, string, string, string]>(
        'INSERT INTO purged_keys (seq, key_hash, topic, event_id, received_at) VALUES (?, ?, ?, ?, ?)'),
      deleteThrough: db.prepare<[string, number]>('DELETE FROM events WHERE topic = ? AND seq <= ?'),
      updateTopic: db.prepare<[number, number, number, string]>(
        'UPDATE topics SET events = events - ?, bytes = bytes - ?, purged_through = ? WHERE topic = ?'),
      eventAt: db.prepare<[number], { topic: string; bytes: number }>(
        `SELECT topic, ${EVENT_BYTES_SQL} AS bytes FROM events WHERE seq = ?`),
      deleteEvent: db.prepare<[number]>('DELETE FROM events WHERE seq = ?'),
      forgetKey: db.prepare<[number]>('DELETE FROM purged_keys WHERE seq = ?'),
      purgeOne: db.prepare<[number, number, string]>(
        'UPDATE topics SET events = events - 1, bytes = bytes - ?, purged_through = max(purged_through, ?) WHERE topic = ?'),
      purgedKeysHead: db.prepare<[number], [number, string]>('SELECT seq, received_at FROM purged_keys ORDER BY seq LIMIT ?').raw(),
      forgetPurgedKeys: db.prepare<[number]>('DELETE FROM purged_keys WHERE seq <= ?'),
      savePurge: db.prepare<[string, number, number, number]>(
        `INSERT INTO purges (id, at, events, duration_ms, total) VALUES (1, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET at = excluded.at, events = excluded.events, duration_ms = excluded.duration_ms,
                                        total = purges.total + excluded.total`),
      lastPurge: db.prepare<[], { at: string; events: number; duration_ms: number; total: number }>(
        'SELECT at, events, duration_ms, total FROM purges'),
    };
    this.purgeTransaction = db.transaction(this.purge.bind(this));
    this.forgetTransaction = db.transaction(this.forgetKeys.bind(this));
    const row = this.statements.lastPurge.get();
    this.last = row && { at: row.at, events: row.events, durationMs: row.duration_ms, total: row.total };
  }

  private readonly purgeTransaction;
  private readonly forgetTransaction;

  get lastPurge(): PurgeReport | undefined {
    return this.last;
  }

  /** Purges until `deadline` (performance.now()) or the end of the round. */
  step(deadline: number, nowMs: number): PurgeStep {
    const topicEvents = new Map<string, number>();
    const started = performance.now();
    const windowCutoff = this.policy.dedupWindowMs === undefined ? '' : new Date(nowMs - this.policy.dedupWindowMs).toISOString();
    if (windowCutoff) this.forgetTransaction(windowCutoff);
    let pending = true;
    while (performance.now() < deadline) {
      const topics = this.statements.topics.all(this.cursor, TOPICS_PER_READ);
      if (topics.length === 0) {
        pending = this.endRound();
        break;
      }
      for (const [topic, events] of topics) {
        const limit = this.limitOf(topic);
        const count = limit ? this.purgeTransaction(topic, events, limit, nowMs, windowCutoff) : 0;
        if (count > 0) topicEvents.set(topic, events - count);
        // A full chunk leaves more of this topic for the next pass.
        if (count < CHUNK) this.cursor = topic;
        if (count === CHUNK || performance.now() >= deadline) break;
      }
    }
    if (topicEvents.size > 0) this.record(performance.now() - started);
    return { topicEvents, pending };
  }

  private limitOf(topic: string): RetentionLimit | undefined {
    if (!this.limits.has(topic)) this.limits.set(topic, limitFor(this.policy, topic));
    return this.limits.get(topic);
  }

  /** Purges the oldest events of `topic` that are past its limit, up to CHUNK; returns how many. */
  private purge(topic: string, events: number, limit: RetentionLimit, nowMs: number, windowCutoff: string): number {
    const excess = limit.maxEvents === undefined ? 0 : events - limit.maxEvents;
    const ageCutoff = limit.maxAgeMs === undefined ? '' : new Date(nowMs - limit.maxAgeMs).toISOString();
    if (excess <= 0 && ageCutoff === '') return 0;
    const rows = this.statements.oldest.all(topic, CHUNK);
    let count = 0;
    let bytes = 0;
    for (const row of rows) {
      if (count >= excess && !(row.received_at < ageCutoff)) break;
      // A key already outside the dedup window is forgotten with its event.
      if (!(row.received_at < windowCutoff)) {
        this.statements.keepKey.run(row.seq, row.key_hash, topic, row.event_id, row.received_at);
      }
      bytes += row.bytes;
      count++;
    }
    if (count === 0) return 0;
    const through = rows[count - 1]!.seq;
    this.statements.deleteThrough.run(topic, through);
    this.statements.updateTopic.run(count, bytes, through, topic);
    this.roundPurged += count;
    this.statements.savePurge.run(new Date(nowMs).toISOString(), this.roundPurged, this.roundMs, count);
    return count;
  }

  /**
   * Purges the events at `seqs` (and forgets their keys), inside the caller's transaction: copies of keys
   * that DEDUP_WINDOW forgot, stored again just now. Returns the topic of each event deleted.
   */
  purgeForgotten(seqs: readonly number[]): string[] {
    const topics: string[] = [];
    for (const seq of seqs) {
      this.statements.forgetKey.run(seq);
      const row = this.statements.eventAt.get(seq);
      if (!row) continue;
      this.statements.deleteEvent.run(seq);
      this.statements.purgeOne.run(row.bytes, seq, row.topic);
      topics.push(row.topic);
    }
    return topics;
  }

  /** Deletes purged keys that DEDUP_WINDOW has forgotten, oldest first, up to CHUNK. */
  private forgetKeys(windowCutoff: string): number {
    const head = this.statements.purgedKeysHead.all(CHUNK);
    let through = 0;
    for (const [seq, receivedAt] of head) {
      if (receivedAt >= windowCutoff) break;
      through = seq;
    }
    return through === 0 ? 0 : this.statements.forgetPurgedKeys.run(through).changes;
  }

  /** Ends a round; whether the next one should start at once (this one purged something). */
  private endRound(): boolean {
    this.cursor = '';
    const busy = this.roundPurged > 0;
    this.roundPurged = 0;
    this.roundMs = 0;
    return busy;
  }

  /** A step that purged: its time counts towards the round's, and the report is re-read as stored. */
  private record(ms: number): void {
    this.roundMs += ms;
    const row = this.statements.lastPurge.get()!;
    this.last = { at: row.at, events: row.events, durationMs: this.roundMs, total: row.total };
  }
}
