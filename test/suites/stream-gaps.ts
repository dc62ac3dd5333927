import t from 'tap';
import { hubOver, seen, settle, until, type GapStoreKind } from '../helpers/gap-store.js';
import { RangeEnds } from '../../src/stream/time-range.js';

/**
 * The stream's `gap` events on SQLite and PostgreSQL alike: real purges of the store, run at chosen moments
 * between the hub's reads. Seqs are taken from the commits (PostgreSQL's do not count 1, 2, 3).
 */
export function streamGapSuite(kind: GapStoreKind): void {
  t.test('a later purge of another topic, below a horizon already told, gets a gap of its own', async (t) => {
    // a keeps its newest event, b its newest two; c is never purged.
    const db = await kind.open(t, 'a=1,b=2');
    const [c1, , c2, b2, , a2] = await db.append(['c', 'b', 'c', 'b', 'a', 'a']);
    await db.purge();
    const { open } = hubOver(t, db.reader, { pageLimit: 1 });
    let reads = 0;
    let b3 = 0;
    // After the stream told of a's purge and wrote c1: a third b purges b1, which lies below a's horizon. The
    // third read: the first page was read before the check that told of a's purge, so it was read again.
    db.beforeStreamRead = async () => {
      if (++reads !== 3) return;
      b3 = (await db.append(['b']))[0]!;
      await db.purge();
    };
    const client = open(0);
    await until(client, 7);
    await settle();
    t.same(seen(client.messages), ['gap 0->0', c1, `gap ${c1}->${c1}`, c2, b2, a2, b3], 'each purge told once, when it happened');
  });

  t.test('reconnecting with a gap\'s id is not told the same purges again; a purge since is told', async (t) => {
    // a keeps its newest event; c is never purged, so an all-topics stream cannot resume past a's purged ones.
    const db = await kind.open(t, 'a=1');
    const [, c1, , c2, a3] = await db.append(['a', 'c', 'a', 'c', 'a']);
    await db.purge();
    const { open } = hubOver(t, db.reader);
    const first = open(0);
    await until(first, 4);
    t.same(seen(first.messages), ['gap 0->0', c1, c2, a3]);
    // What the route makes of the gap's id sent back as Last-Event-ID: `<seq>:<sum>`.
    const [after, toldSum] = first.messages[0]!.id!.split(':');
    t.ok(toldSum, `the gap's id carries the purges it told of (${first.messages[0]!.id})`);
    const resume = () => open(Number(after), undefined, { toldSum: BigInt(toldSum ?? 0) });

    const again = resume();
    await until(again, 3);
    await settle();
    t.same(seen(again.messages), [c1, c2, a3], 'no gap the second time, every retained event after it');

    const [a4] = await db.append(['a']);
    await db.purge();
    const later = resume();
    await until(later, 4);
    await settle();
    t.same(seen(later.messages), ['gap 0->0', c1, c2, a4], 'a3 purged since: told');
  });

  t.test('until= across a purge: the gap inside the range is told, the range ends before the first event received after it', async (t) => {
    // a keeps its newest event; c is never purged. Received at t0: a1 c1 a2 c2; at t2, after until: a3 c3.
    const db = await kind.open(t, 'a=1');
    const [, c1, , c2] = await db.append(['a', 'c', 'a', 'c'], '2026-11-24T10:00:00.000Z');
    const [a3, c3] = await db.append(['a', 'c'], '2026-11-24T11:00:00.001Z');
    await db.purge();
    const untilText = '2026-11-24T11:00:00.000Z';
    const ranges = new RangeEnds(db.reader);
    const range = { until: untilText, end: () => ranges.endOf(untilText) };
    const { open } = hubOver(t, db.reader);
    const first = open(0, undefined, { range });
    await until(first, 4);
    await settle();
    t.same(seen(first.messages), ['gap 0->0', c1, c2, `end ${a3! - 1}`], 'a1 and a2 purged: told; nothing of a3 or c3');
    t.ok(first.ended, 'the stream ends after `event: end`');
    t.ok(c3! > a3!);

    // Resumed from the gap's id (what a client sends back as Last-Event-ID): the rest of the range, the same end.
    const [after, toldSum] = first.messages[0]!.id!.split(':');
    const resumed = open(Number(after), undefined, { toldSum: BigInt(toldSum ?? 0), range });
    await until(resumed, 3);
    await settle();
    t.same(seen(resumed.messages), [c1, c2, `end ${a3! - 1}`], 'no gap told twice, nothing repeated');
    const fromLast = open(c2!, undefined, { range });
    await until(fromLast, 1);
    t.same(seen(fromLast.messages), [`end ${a3! - 1}`], 'resumed at the range\'s last event: only the end');
    t.ok(fromLast.ended);
  });

  t.test('until= ahead of every stored event: live events until the first received after it, then the end', async (t) => {
    const db = await kind.open(t, 'a=1000');
    const [a1] = await db.append(['a'], '2026-11-24T10:00:00.000Z');
    const untilText = '2026-11-24T11:00:00.000Z';
    const ranges = new RangeEnds(db.reader);
    const { commits, open } = hubOver(t, db.reader);
    const client = open(0, ['a'], { range: { until: untilText, end: () => ranges.endOf(untilText) } });
    await until(client, 1);
    // Received before until, committed while the stream is live: still in the range.
    const [b1, a2] = await db.append(['b', 'a'], '2026-11-24T10:59:59.999Z');
    commits.notify(['b', 'a']);
    await until(client, 2);
    // Of another topic, received after until: the range ends there, before a3 (received before until, but committed after it).
    const [b2] = await db.append(['b'], '2026-11-24T11:00:00.001Z');
    const [a3] = await db.append(['a'], '2026-11-24T10:59:00.000Z');
    commits.notify(['b', 'a']);
    await until(client, 3);
    await settle();
    t.same(seen(client.messages), [a1, a2, `end ${b2! - 1}`], 'the events of its topics before the first received after until, then the end');
    t.ok(client.ended);
    t.ok(b1! < a2! && a3! > b2!);
  });
}
