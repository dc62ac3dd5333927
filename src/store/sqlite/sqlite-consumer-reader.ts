import type Database from 'better-sqlite3';
import { CONSUMER_COLUMNS } from '../consumer-table.js';
import type { ConsumerPage, ConsumerRecord, ConsumerStatus } from '../consumers.js';
import type { ConsumerPageBounds } from '../store.js';
import { sqliteConsumer, type SqliteConsumerRow } from './sqlite-consumers.js';
import { below, COLUMNS, items, type Row } from './sqlite-page.js';
import { jsonArrayWithin } from '../json-array.js';

/**
 * Durable consumers on the reader worker's read-only connection. A consumer of some topics reads each of
 * them through the (topic, seq) index and merges them by seq, lazily: a page costs the events it holds
 * (plus one row per topic), never a scan over the topics it does not read.
 */
export class SqliteConsumerReader {
  private readonly statements;
  private readonly pageTransaction;

  constructor(private readonly db: Database.Database, private readonly maxPageBytes: number) {
    this.statements = {
      one: db.prepare<[string], SqliteConsumerRow>(`SELECT ${CONSUMER_COLUMNS} FROM consumers WHERE name = ?`),
      all: db.prepare<[], SqliteConsumerRow>(`SELECT ${CONSUMER_COLUMNS} FROM consumers ORDER BY name`),
      lagAll: db.prepare<[number], number>('SELECT count(*) FROM events WHERE seq > ?').pluck(),
      lagTopic: db.prepare<[string, number], number>('SELECT count(*) FROM events WHERE topic = ? AND seq > ?').pluck(),
      firstAll: db.prepare<[number], { seq: number; received_at: string }>(
        'SELECT seq, received_at FROM events WHERE seq > ? ORDER BY seq LIMIT 1'),
      firstTopic: db.prepare<[string, number], { seq: number; received_at: string }>(
        'SELECT seq, received_at FROM events WHERE topic = ? AND seq > ? ORDER BY seq LIMIT 1'),
    };
    // One read transaction: the consumer's position and its events come from the same snapshot.
    this.pageTransaction = db.transaction((name: string, limit: number, bounds: ConsumerPageBounds) => this.readPage(name, limit, bounds));
  }

  consumer(name: string): ConsumerRecord | undefined {
    const row = this.statements.one.get(name);
    return row && sqliteConsumer(row);
  }

  status(name: string | undefined): ConsumerStatus[] {
    const { one, all } = this.statements;
    const rows = name === undefined ? all.all() : [one.get(name)].filter((row) => row !== undefined);
    return rows.map((row) => this.withLag(sqliteConsumer(row)));
  }

  page(name: string, limit: number, bounds: ConsumerPageBounds = {}): ConsumerPage | undefined {
    return this.pageTransaction(name, limit, bounds);
  }

  private readPage(name: string, limit: number, { after = 0, before }: ConsumerPageBounds): ConsumerPage | undefined {
    const consumer = this.consumer(name);
    if (!consumer) return undefined;
    // The page may stop before a row it read (the byte cap): `next` is the seq of the last item it took.
    const seqs: number[] = [];
    const rows = below(this.matching(consumer.topics, Math.max(consumer.position, after), limit), before);
    const { page, count } = jsonArrayWithin(items(noting(rows, seqs)), this.maxPageBytes);
    return { events: page, count, next: count > 0 ? seqs[count - 1]! : consumer.position, topics: consumer.topics };
  }

  private *matching(topics: string[] | null, position: number, limit: number): Generator<Row> {
    if (topics === null) {
      yield* this.db.prepare<[number, number], Row>(`SELECT ${COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?`)
        .iterate(position, limit);
      return;
    }
    // A statement runs one iteration at a time, so each topic gets its own.
    const sources = topics.map((topic) => this.db.prepare<[string, number, number], Row>(
      `SELECT ${COLUMNS} FROM events WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?`).iterate(topic, position, limit));
    yield* mergeBySeq(sources, limit);
  }

  private withLag(consumer: ConsumerRecord): ConsumerStatus {
    const { lagAll, lagTopic, firstAll, firstTopic } = this.statements;
    const { topics, position } = consumer;
    if (topics === null) {
      return { ...consumer, lag: lagAll.get(position)!, oldestUnconsumedAt: firstAll.get(position)?.received_at ?? null };
    }
    let lag = 0;
    let first: { seq: number; received_at: string } | undefined;
    for (const topic of topics) {
      lag += lagTopic.get(topic, position)!;
      const candidate = firstTopic.get(topic, position);
      if (candidate && (!first || candidate.seq < first.seq)) first = candidate;
    }
    return { ...consumer, lag, oldestUnconsumedAt: first?.received_at ?? null };
  }
}

/** The rows of seq-ordered sources in one seq order, at most `limit`; every source is closed at the end. */
function* mergeBySeq(sources: IterableIterator<Row>[], limit: number): Generator<Row> {
  const heads = sources.map((source) => ({ source, row: source.next() }));
  try {
    for (let taken = 0; taken < limit; taken++) {
      let min: (typeof heads)[number] | undefined;
      for (const head of heads) if (!head.row.done && (!min || head.row.value.seq < (min.row.value as Row).seq)) min = head;
      if (!min) return;
      yield min.row.value as Row;
      min.row = min.source.next();
    }
  } finally {
    for (const source of sources) source.return?.();
  }
}


/** The rows as they are, each one's seq pushed to `seqs` as it passes. */
function* noting(rows: Iterable<Row>, seqs: number[]): Generator<Row> {
  for (const row of rows) {
    seqs.push(row.seq);
    yield row;
  }
}
