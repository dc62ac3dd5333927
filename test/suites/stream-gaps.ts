import t from 'tap';
import { hubOver, seen, settle, until, type GapStoreKind } from '../helpers/gap-store.js';

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
    // After the stream told of a's purge and wrote c1: a third b purges b1, which lies below a's horizon.
    db.beforeStreamRead = async () => {
      if (++reads !== 2) return;
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
}
