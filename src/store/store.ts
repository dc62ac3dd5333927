import type { TopicDetail } from './topic-detail.js';
import type { IncomingEvent } from '../event.js';
import type { ConsumerCommand, ConsumerOutcome, ConsumerPage, ConsumerRecord, ConsumerStatus } from './consumers.js';

/**
 * A commit the store could not make for a reason outside the batch (disk full, I/O error, file gone).
 * The batch was rolled back whole; the consumer retries it later.
 */
/**
 * A store that cannot be opened, said in words written for operators (no secrets): the one error of the
 * writer whose message /readyz and publishes show. Any other error's message stays in the log.
 */
export class StoreOpenError extends Error {
  override name = 'StoreOpenError';
}

export class StoreError extends Error {
  override name = 'StoreError';
  constructor(message: string, readonly code: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Store-wide durable counters. */
export interface StoreCounters {
  uniqueProcessed: number;
  duplicateDropped: number;
}

/** SQLite answers at once; PostgreSQL over the network. One interface serves both, so one consumer loop does. */
export type MaybePromise<T> = T | Promise<T>;

/** Where the writer stood in the ring when a batch committed; stored in the batch's own transaction. */
export interface RingCheckpoint {
  epoch: string;
  /** Every record before this position is committed. */
  position: number;
}

/** How a batch commits beside others in flight (a store's commitsInFlight > 1). */
export interface CommitOrder {
  /** Which of the store's connections commits it: 0 .. commitsInFlight - 1, one batch at a time each. */
  lane: number;
  /** The batch's number (0 .. 2^31 - 1, counting up and wrapping), which the batch after it names in `after`. */
  turn: number;
  /**
   * The batch before it, still committing: this one becomes durable only once that one is. Absent: every
   * batch before it is committed.
   */
  after?: { turn: number; lane: number; position: number };
  /** Events of the batch not passed in, as an earlier batch in flight stores their keys: counted as duplicates. */
  heldBack?: number;
}

/**
 * The store aborted the commit to break a conflict with other commits (PostgreSQL's deadlock detector, or a
 * serialization failure): nothing of it was stored, and committing it again is expected to succeed. Not a
 * store failure: the writer retries at once, without refusing publishes meanwhile.
 */
export class StoreConflictError extends StoreError {
  override name = 'StoreConflictError';
}

/** The batch before this one rolled back, so this one did too, to be committed after it. */
export class OutOfTurnError extends StoreError {
  override name = 'OutOfTurnError';
  constructor() {
    super('an earlier batch rolled back; committing again in ring order', 'OUT_OF_TURN');
  }
}

export interface BatchResult {
  /** 1 where the event at that index was stored, 0 where it was a duplicate (of the store or the batch). */
  isNew: Uint8Array;
  /** Store-wide counters after the commit. */
  counters: StoreCounters;
  /** Events this batch stored per topic. */
  topicEvents: Map<string, number>;
  /** The seqs this batch stored, lowest and highest; undefined when it stored nothing (all duplicates). */
  seqRange: SeqRange | undefined;
}

/** The lowest and highest seq of a commit. Other replicas' commits may interleave on a shared store. */
export interface SeqRange {
  first: number;
  last: number;
}

export interface StoreSnapshot {
  /** Store-wide counters. */
  counters: StoreCounters;
  /** Store-wide stored events per topic: every topic (snapshot) or the changed ones (changes). */
  topicEvents: Map<string, number>;
}

/** The consumer's side of the store: it commits whole batches. */
export interface EventStore {
  /** True when other writers (replicas) change the store too, so snapshots need refreshing. */
  readonly shared: boolean;
  /**
   * How many commitBatch calls may run at once, each on its own lane (see CommitOrder): 1 for SQLite,
   * whose writer is synchronous; PG_WRITE_CONNECTIONS for PostgreSQL (2 with `auto`).
   */
  readonly commitsInFlight: number;
  /** How many of those lanes to use now: fewer while running more would cost more than it gains (`auto`). */
  readonly lanesInUse: number;
  /** Counters and every topic; read once, when the consumer starts. */
  snapshot(): MaybePromise<StoreSnapshot>;
  /** Counters and the topics any writer changed since the last snapshot() or changes(): never the whole table. */
  changes(): MaybePromise<StoreSnapshot>;
  /** This writer's last checkpoint (of the ring it wrote last). */
  checkpoint(): MaybePromise<RingCheckpoint | undefined>;
  /** Stores the new events of `events` and the checkpoint atomically: all of it or, on StoreError, none. */
  commitBatch(events: readonly IncomingEvent[], checkpoint: RingCheckpoint, order?: CommitOrder): MaybePromise<BatchResult>;
  /** Creates, commits or deletes a durable consumer in a transaction of its own, between batches. */
  applyConsumerCommand(command: ConsumerCommand): MaybePromise<ConsumerOutcome>;
  /**
   * Background upkeep, between batches: purging by retention and (SQLite) sealing and merging the dedup
   * index. Does at most about `budgetMs` of work, so publishes never wait long behind it; resolves to
   * whether more is pending (call again soon) and the index's figures.
   */
  upkeep(budgetMs: number): MaybePromise<UpkeepReport>;
  close(): MaybePromise<void>;
}

/** The store's figures that only its writer knows, reported after each upkeep step. */
export interface UpkeepReport {
  /** More upkeep is due now; otherwise the next is due after a pause. */
  pending: boolean;
  index: DedupIndexFigures;
  /** The last purge that deleted anything, if any. */
  lastPurge: PurgeReport | undefined;
  /** Retained events of the topics this step purged from (store-wide counts). */
  topicEvents: Map<string, number>;
}

export interface DedupIndexFigures {
  /** Keys the dedup index holds (in memory and in sealed segments). */
  keys: number;
  /** Bytes of memory it takes (tables and filters). */
  memoryBytes: number;
  /** Keys in the in-memory tables (the most recent). */
  hotKeys: number;
  /** Sealed on-disk segments. */
  segments: number;
}

export interface PurgeReport {
  /** When it ended (UTC ISO). */
  at: string;
  /** Events it purged. */
  events: number;
  durationMs: number;
  /** Events purged since the store was created. */
  total: number;
}

/** What a reader is told about purged events behind its cursor. */
export interface PurgeHorizon {
  /** The highest purged seq among the topics read: a cursor below it has missed events. */
  max: number;
  /**
   * The lowest purged horizon among the topics read: every event of them at or below it is gone, so a
   * reader behind it may resume from here without skipping anything retained.
   */
  min: number;
}

export type { TopicDetail } from './topic-detail.js';

/**
 * Topic patterns (src/topic-scope.ts) a read keeps to: an access token's readable topics. Undefined: every
 * topic. Applied in the query itself, so a page is full of readable events and its cursor never skips one.
 */
export type ReadableTopics = readonly string[] | undefined;

export interface EventPageQuery {
  topic?: string | undefined;
  after: number;
  limit: number;
  readable?: ReadableTopics;
  /** Only events with a lower seq: the end of a time range (see EventReader.firstReceivedAfter). */
  before?: number | undefined;
}

/** Where a durable consumer's page may start and must end, beyond its committed position. */
export interface ConsumerPageBounds {
  /** Start after this seq when it lies past the position (a time range's start). */
  after?: number | undefined;
  /** Only events with a lower seq (a time range's end). */
  before?: number | undefined;
}

export interface TopicPageQuery {
  /** The last topic name seen; '' starts from the first. */
  after: string;
  limit: number;
  readable?: ReadableTopics;
}

/** A stream read: events after `after` of the given topics (undefined: every topic), up to `limit` and `maxBytes`. */
export interface StreamPageQuery {
  topics: readonly string[] | undefined;
  after: number;
  limit: number;
  maxBytes: number;
  /** With `topics` undefined: only these readable topics. */
  readable?: ReadableTopics;
  /** Read the purge horizon of its topics with the page too, where the store can (StreamPage.purgeHorizon). */
  purgeHorizon?: boolean;
}

/**
 * Stored events as Server-Sent Events frames (`id: <seq>`, `event: event`, `data: <the /events item>`), one
 * after another in `frames`, with a small index so that a subscriber takes the frames of its topics as byte
 * slices without parsing anything: frame i is `frames[ends[i-1] ?? 0, ends[i])`, of seq `seqs[i]` and topic
 * `topics[i]`.
 */
export interface StreamPage {
  frames: Uint8Array;
  seqs: Float64Array;
  ends: Uint32Array;
  topics: string[];
  /**
   * The cursor to continue from: the last seq returned, or, for an empty page, the position every matching
   * stored event at or below has been read up to (the store's visible end), so a reader of rare topics
   * moves on too. It lies before `after` when that is past the store's end (a Last-Event-ID from elsewhere).
   */
  end: number;
  /** Rows committed but not readable yet (above PostgreSQL's commit horizon): read again shortly. */
  pending: boolean;
  /**
   * Asked for (StreamPageQuery.purgeHorizon) and read in the same snapshot as the page (PostgreSQL): the
   * purge horizon of its topics, which tells every purge the page missed, as a check after it would.
   */
  purgeHorizon?: PurgeHorizon;
}

/** Every reader is busy and the queue for them is full (or the wait for one timed out): retry shortly. */
export class ReadersBusyError extends Error {
  override name = 'ReadersBusyError';
}

/**
 * The HTTP side of the store: read-only, beside the writer. Pages are the UTF-8 bytes of a JSON array,
 * ready for the socket.
 */
export interface EventReader {
  /**
   * Stored events with `seq > after`, oldest first: at most `limit`, and no more than the page byte cap
   * (MAX_PAGE_BYTES) allows, stopping before the event that would pass it but always at least one.
   */
  page(query: EventPageQuery): Promise<Uint8Array>;
  /** Stored events after a cursor as SSE frames, for /events/stream; several topics in one read. */
  streamPage(query: StreamPageQuery): Promise<StreamPage>;
  /**
   * Where a stream starts: the cursor before the first event received at or after `since` (RFC 3339, as
   * UTC ISO text), or, without `since` or when no such event is stored yet, the current end (only events
   * committed from now on).
   */
  startAfter(since: string | undefined): Promise<number>;
  /** Topics after `after` by name, each with its stored events: `[{"topic","events"}]`. */
  topics(query: TopicPageQuery): Promise<Uint8Array>;
  /**
   * A durable consumer's definition and committed position, or undefined when there is none: what
   * `GET /events/stream?consumer=` starts from (its `topics` and `position`).
   */
  consumer(name: string): Promise<ConsumerRecord | undefined>;
  /** Every consumer (or the one named) with its lag; at most MAX_CONSUMERS of them. */
  consumerStatus(name?: string): Promise<ConsumerStatus[]>;
  /** The consumer's events after its committed position, paged as page() pages; undefined for an unknown consumer. */
  consumerPage(name: string, limit: number, bounds?: ConsumerPageBounds): Promise<ConsumerPage | undefined>;
  /**
   * Where a time range ends: the seq of the first retained event, in commit order, received after `until`
   * (UTC ISO text, as received_at), or undefined while none is (readably) stored. Once found it never moves
   * down: later commits only take higher seqs.
   */
  firstReceivedAfter(until: string): Promise<number | undefined>;
  /**
   * The purge horizon of the given topics (undefined: every topic, or every readable one); { max: 0, min: 0 }
   * when nothing was purged.
   */
  purgeHorizon(topics: readonly string[] | undefined, readable?: ReadableTopics): Promise<PurgeHorizon>;
  /**
   * The purge horizon of each of the given topics (undefined: every topic, or every readable one) that lies
   * above `after`, ascending.
   */
  purgeHorizonsAbove(topics: readonly string[] | undefined, after: number, readable?: ReadableTopics): Promise<number[]>;
  /** Figures of the named topics (unknown ones are left out), for /stats. */
  topicDetails(topics: readonly string[]): Promise<TopicDetail[]>;
  /** Bytes the store takes on disk (SQLite: the database, its WAL and the sealed key files). */
  diskBytes(): Promise<number>;
  close(): Promise<void>;
}
