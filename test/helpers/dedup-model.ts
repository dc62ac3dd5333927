import fc from 'fast-check';
import type { IncomingEvent } from '../../src/event.js';
import { cyrb53Key } from '../../src/store/sqlite/dedup/key-hash.js';
import { SqliteEventStore, type SqliteStoreOptions } from '../../src/store/sqlite/sqlite-store.js';

/*
 * The dedup index against a model (the set of keys stored so far), shared by the model-based test and the
 * segment-damage fuzz: random commits, seals, merges, purges, clean restarts and abandoned stores (a
 * kill -9 leaves the files as they were), each batch's answers checked against the model.
 */

const checkpoint = { epoch: 'model', position: 0 };
export const modelEvent = (topic: string, eventId: string, receivedAt = new Date().toISOString()): IncomingEvent => ({
  topic, eventId, timestamp: '2026-11-24T10:00:00Z', source: 'model', payload: '{"n":1}', receivedAt,
});

/** Drives upkeep to the end, as the writer does between batches. */
export const settle = (store: SqliteEventStore) => {
  for (let i = 0; i < 10_000 && store.upkeep(50).pending; i++);
};

export type ModelStep =
  | { kind: 'batch'; keys: [string, number][] }
  | { kind: 'upkeep' } | { kind: 'slice' } | { kind: 'restart' } | { kind: 'abandon' };

/** Steps of the model, weighted; keys from topics a, b, c and ids 0..maxId. */
export function modelSteps(maxId: number, maxBatch: number, weights: Record<ModelStep['kind'], number>) {
  const key = fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.integer({ min: 0, max: maxId }));
  return [
    { weight: weights.batch, arbitrary: fc.array(key, { minLength: 1, maxLength: maxBatch }).map((keys) => ({ kind: 'batch' as const, keys })) },
    ...(['upkeep', 'slice', 'restart', 'abandon'] as const).map((kind) => ({ weight: weights[kind], arbitrary: fc.constant({ kind }) })),
  ];
}

/** Store options of one run: a 4-bit hash (`weak`) makes every decision meet colliding keys; `purge` keeps topic c to its newest 5 events. */
export function modelOptions(weak: boolean, purge: boolean): SqliteStoreOptions {
  const retention = { rules: [{ pattern: 'c', matcher: /^c$/, maxAgeMs: undefined, maxEvents: 5 }], dedupWindowMs: undefined };
  const weakHash = (topic: string, id: string) => cyrb53Key(topic, id) % 16;
  return { synchronous: 'normal', maxBytes: 0, hotKeys: 16, ...(weak ? { keyHash: weakHash } : {}), ...(purge ? { retention } : {}) };
}

/**
 * Runs `steps` on a store at `path`, throwing at the first answer that differs from the model; a step that is
 * not the model's goes to `other`. Returns the open store and the keys stored.
 */
export function runModel<S extends { kind: string }>(
  path: string, options: SqliteStoreOptions, steps: readonly (ModelStep | S)[], other: (step: S) => void = () => {},
): { store: SqliteEventStore; stored: Set<string> } {
  let store = new SqliteEventStore(path, options);
  const stored = new Set<string>();
  for (const s of steps as (ModelStep | (S & { kind: 'other' }))[]) {
    switch (s.kind) {
      case 'batch': {
        const expected = s.keys.map(([topic, n]) => {
          const fresh = !stored.has(`${topic}/${n}`);
          stored.add(`${topic}/${n}`);
          return fresh ? 1 : 0;
        });
        const { isNew } = store.commitBatch(s.keys.map(([topic, n]) => modelEvent(topic, String(n))), checkpoint);
        if (JSON.stringify([...isNew]) !== JSON.stringify(expected)) {
          throw new Error(`keys ${JSON.stringify(s.keys)}: got ${JSON.stringify([...isNew])}, expected ${JSON.stringify(expected)}`);
        }
        break;
      }
      case 'upkeep': settle(store); break;
      // One slice of a seal or merge, then more batches meet it half done.
      case 'slice': store.upkeep(0.01); break;
      case 'restart': store.close(); store = new SqliteEventStore(path, options); break;
      // Left open and never closed: what a kill -9 leaves behind (no shutdown seal).
      case 'abandon': store = new SqliteEventStore(path, options); break;
      default: other(s as S);
    }
  }
  return { store, stored };
}
