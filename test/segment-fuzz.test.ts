import { appendFileSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import t from 'tap';
import { modelOptions, modelSteps, runModel, settle } from './helpers/dedup-model.js';
import { segmentFiles } from './helpers/segment-damage.js';

/*
 * Issue 18: the dedup index against a model (the set of keys stored so far) while random bytes of random
 * segment files are damaged — bits flipped anywhere or in the pairs at the end, runs zeroed, files cut
 * short or grown with garbage — between and during the commits, seals, merges, restarts and abandoned
 * stores (kill -9) of a real store on a real SQLite file. A stored key is never new again, a new key never
 * a duplicate, no upkeep or commit ever throws (the writer would stop), and the rows hold each key once.
 * FUZZ_RUNS sets the number of runs (FUZZ_SEED replays one).
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 150);

type Damage = { kind: 'flip' | 'zero' | 'truncate' | 'append'; file: number; at: number; tail: boolean; length: number; garbage: Uint8Array };

/** Where `damage` lands in a file of `size` bytes: anywhere, or (tail) among the pairs that end the file. */
const offset = (damage: Damage, size: number) =>
  Math.min(size - 1, damage.tail ? size - 1 - Math.floor(damage.at * Math.min(size, 4_096)) : Math.floor(damage.at * size));

function harm(file: string, damage: Damage): void {
  const size = statSync(file).size;
  if (damage.kind === 'append') return appendFileSync(file, damage.garbage);
  if (size === 0) return;
  const at = offset(damage, size);
  if (damage.kind === 'truncate') return truncateSync(file, at);
  const bytes = readFileSync(file);
  if (damage.kind === 'zero') bytes.fill(0, at, Math.min(size, at + damage.length));
  // Flips: one bit in `length` % 8 + 1 bytes from `at` on.
  else for (let i = at; i < Math.min(size, at + (damage.length % 8) + 1); i++) bytes[i] = bytes[i]! ^ (1 << (damage.garbage[0]! % 8));
  writeFileSync(file, bytes);
}

t.test('damaged segment files never change a dedup answer nor stop the writer (model-based fuzz)', async (t) => {
  const dir = t.testdir();
  let run = 0;
  const damage = fc.record({
    kind: fc.constantFrom('flip', 'zero', 'truncate', 'append'),
    file: fc.nat(),
    at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    tail: fc.boolean(),
    length: fc.integer({ min: 1, max: 600 }),
    garbage: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  });
  const step = fc.oneof(
    ...modelSteps(80, 16, { batch: 6, upkeep: 2, slice: 2, restart: 2, abandon: 1 }),
    { weight: 4, arbitrary: fc.array(damage, { minLength: 1, maxLength: 3 }).map((damages) => ({ kind: 'damage' as const, damages })) },
  );
  const started = performance.now();
  await fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 50 }), fc.boolean(), fc.boolean(), (steps, weak, purge) => {
    const path = join(dir, `fuzz-${run++}.db`);
    const { store, stored } = runModel(path, modelOptions(weak, purge), steps, (s: { kind: 'damage'; damages: Damage[] }) => {
      const files = segmentFiles(path);
      for (const d of s.damages) if (files.length > 0) harm(files[d.file % files.length]!, d);
    });
    settle(store);
    store.close();
    const db = new Database(path, { readonly: true });
    try {
      const [rows, keys] = db.prepare(`SELECT count(*), count(DISTINCT topic || char(0) || event_id) FROM
        (SELECT topic, event_id FROM events UNION ALL SELECT topic, event_id FROM purged_keys)`).raw().get() as [number, number];
      if (rows !== stored.size || keys !== stored.size) throw new Error(`rows hold ${rows} copies of ${keys} keys; ${stored.size} were stored`);
    } finally {
      db.close();
    }
  }), { numRuns: RUNS, ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}) });
  t.pass(`${RUNS} runs in ${((performance.now() - started) / 1000).toFixed(1)} s: every answer exact, no upkeep or commit threw`);
});
