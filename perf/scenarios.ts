import type { IdKind } from '../src/clients/synthetic-events.js';
import type { BodyFormat } from './bodies.js';

export interface Scenario {
  name: string;
  description: string;
  requests: number;
  eventsPerRequest: number;
  connections: number;
  idKind: IdKind;
  query?: string;
  /** Also poll /events and /stats while publishing, and report their latency. */
  readers?: boolean;
  /** Events stored directly before the server starts, to see the rate on a grown store. */
  prefill?: number;
  /** Bodies sent with Content-Encoding: gzip (compressed before the clock starts, as a publisher would). */
  gzip?: boolean;
  /** How requests carry their events (default: a JSON array to /publish). */
  format?: BodyFormat;
  /** Runs with the other scenarios of its group when the group is named (e.g. `otlp`). */
  group?: string;
  /** Left out of the default run (too slow for it); run by naming it. */
  optIn?: boolean;
}

const variants = (base: Omit<Scenario, 'idKind' | 'name'> & { name: string }): Scenario[] => [
  { ...base, idKind: 'v4', description: `${base.description}, random ids` },
  { ...base, name: `${base.name}-v7`, idKind: 'v7', description: `${base.description}, time-ordered ids` },
];

export const SCENARIOS: Scenario[] = [
  { name: 'seed', description: '5,000 single-event POSTs, 10 connections', requests: 5_000, eventsPerRequest: 1, connections: 10, idKind: 'v4' },
  { name: 'seed-batch', description: '5,000 events in batches of 100, 10 connections', requests: 50, eventsPerRequest: 100, connections: 10, idKind: 'v4' },
  ...variants({ name: 'single', description: 'single-event POSTs, 64 connections', requests: 40_000, eventsPerRequest: 1, connections: 64 }),
  ...variants({ name: 'batch100', description: 'batches of 100, 16 connections', requests: 3_000, eventsPerRequest: 100, connections: 16 }),
  ...variants({ name: 'batch1000', description: 'batches of 1,000, 4 connections', requests: 300, eventsPerRequest: 1_000, connections: 4 }),
  { name: 'batch1000-gzip', description: 'batches of 1,000 sent gzip-compressed, 4 connections, random ids', requests: 300, eventsPerRequest: 1_000, connections: 4, idKind: 'v4', gzip: true },
  { name: 'queued', description: 'batches of 100 with ?ack=queued, 8 connections', requests: 3_000, eventsPerRequest: 100, connections: 8, idKind: 'v4', query: '?ack=queued' },
  { name: 'mixed', description: 'batches of 100, 8 connections, while 2 readers poll /events and /stats', requests: 2_000, eventsPerRequest: 100, connections: 8, idKind: 'v4', readers: true },
  // `otlp` (issue 20): the same events as OTLP exports and NDJSON, each beside the JSON batches it is compared with.
  ...([['publish-json512', 'json', 512], ['otlp-protobuf512', 'otlp-protobuf', 512], ['otlp-json512', 'otlp-json', 512],
    ['publish-json1000', 'json', 1_000], ['publish-ndjson1000', 'ndjson', 1_000]] as const)
    .map(([name, format, size]): Scenario => ({
      name, description: `${format} batches of ${size}, 4 connections`, requests: Math.round(150_000 / size),
      eventsPerRequest: size, connections: 4, idKind: 'v4', format, group: 'otlp', optIn: true,
    })),
  { name: 'batch1000-5m', description: 'batch1000 on a store pre-filled with 5,000,000 events', requests: 300, eventsPerRequest: 1_000, connections: 4, idKind: 'v4', prefill: 5_000_000, optIn: true },
];

/** Share of re-sent events in every scenario. */
export const DUPLICATE_RATIO = 0.2;

/**
 * The store-lifetime scenarios (issue 12), SQLite only and never part of --all: `grown-*` pre-fill the
 * store with that many events (`grown` with --grown-events), `retention` publishes under a short RETENTION.
 */
export const GROWN_EVENTS: Record<string, number | undefined> = {
  grown: undefined, 'grown-1m': 1_000_000, 'grown-5m': 5_000_000, 'grown-20m': 20_000_000, 'grown-100m': 100_000_000,
};
export const RETENTION_SCENARIO = 'retention';

/** The readers' scenario (issue 21), both stores, never part of --all: every reader path from seq 0 beside the raw scan. */
export const READ_SCENARIO = 'read';
