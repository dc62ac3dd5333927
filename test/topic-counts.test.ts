import fc from 'fast-check';
import t from 'tap';
import { TopicCounts } from '../src/pipeline/topic-counts.js';

/** The reference: sort everything. The leaders must hold the same counts (ties at the edge may differ in name). */
function expectedCounts(counts: Map<string, number>, limit: number): number[] {
  return [...counts.values()].sort((a, b) => b - a).slice(0, limit);
}

t.test('the kept top topics always equal a full sort, through adds, sets (also lower) and resets', async (t) => {
  const topic = fc.integer({ min: 0, max: 30 }).map((n) => `t${n}`);
  const op = fc.oneof(
    fc.record({ kind: fc.constant('add' as const), topic, events: fc.integer({ min: 1, max: 5 }) }),
    fc.record({ kind: fc.constant('set' as const), topic, events: fc.integer({ min: 0, max: 40 }) }),
    fc.record({ kind: fc.constant('reset' as const), entries: fc.array(fc.tuple(topic, fc.integer({ min: 1, max: 40 })), { maxLength: 20 }) }),
  );
  // size 'max': sequences of up to 80 operations indeed (fast-check's default size keeps them near 5).
  let sequences = 0;
  let checks = 0;
  fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 80, size: 'max' }), (limit, ops) => {
    sequences++;
    const kept = new TopicCounts(limit);
    const reference = new Map<string, number>();
    for (const o of ops) {
      if (o.kind === 'add') {
        kept.add(o.topic, o.events);
        reference.set(o.topic, (reference.get(o.topic) ?? 0) + o.events);
      } else if (o.kind === 'set') {
        kept.set(o.topic, o.events);
        reference.set(o.topic, o.events);
      } else {
        kept.reset(o.entries);
        reference.clear();
        for (const [name, events] of o.entries) reference.set(name, events);
      }
      const top = kept.top();
      if (kept.size !== reference.size) return false;
      if (top.some(([name, events]) => reference.get(name) !== events)) return false;
      if (JSON.stringify(top.map(([, events]) => events)) !== JSON.stringify(expectedCounts(reference, limit))) return false;
      checks++;
    }
    return true;
  }), { numRuns: 500 });
  t.equal(sequences, 500, '500 random sequences matched');
  t.ok(checks > 500 * 20, `the kept top was compared after each of ${checks} operations`);
});

t.test('purges lower counts: a leader that falls below an outsider gives way, one that stays above keeps its place', async (t) => {
  const counts = new TopicCounts(2);
  for (const [topic, events] of [['a', 10], ['b', 8], ['c', 5], ['d', 1]] as const) counts.add(topic, events);
  t.same(counts.top(), [['a', 10], ['b', 8]]);
  counts.set('a', 3);
  t.same(counts.top(), [['b', 8], ['c', 5]], 'a, purged to 3, is passed by c');
  counts.set('b', 6);
  t.same(counts.top(), [['b', 6], ['c', 5]], 'b, purged to 6, is still above every outsider');
  counts.set('c', 0);
  counts.set('b', 0);
  t.same(counts.top(), [['a', 3], ['d', 1]], 'topics purged empty fall behind the rest');
  t.equal(counts.size, 4, 'an empty topic is still a topic');
});

t.test('the kept top equals a full sort while purges keep cutting counts (retention by count and age)', async (t) => {
  const topic = fc.integer({ min: 0, max: 40 }).map((n) => `t${n}`);
  const op = fc.oneof(
    fc.record({ kind: fc.constant('add' as const), topic, events: fc.integer({ min: 1, max: 20 }) }),
    // A purge keeps a part of what the topic holds.
    fc.record({ kind: fc.constant('purge' as const), topic, kept: fc.double({ min: 0, max: 1, noNaN: true }) }),
  );
  let checks = 0;
  fc.assert(fc.property(fc.integer({ min: 1, max: 8 }), fc.array(op, { maxLength: 120, size: 'max' }), (limit, ops) => {
    const kept = new TopicCounts(limit);
    const reference = new Map<string, number>();
    for (const o of ops) {
      const events = o.kind === 'add' ? (reference.get(o.topic) ?? 0) + o.events : Math.floor((reference.get(o.topic) ?? 0) * o.kept);
      if (o.kind === 'add') kept.add(o.topic, o.events);
      else kept.set(o.topic, events);
      reference.set(o.topic, events);
      if (JSON.stringify(kept.top().map(([, n]) => n)) !== JSON.stringify(expectedCounts(reference, limit))) return false;
      checks++;
    }
    return true;
  }), { numRuns: 500 });
  t.ok(checks > 500 * 30, `the kept top was compared after each of ${checks} operations`);
});
