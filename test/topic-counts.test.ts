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
