import { Worker } from 'node:worker_threads';
import t from 'tap';
import { createRingBuffer, RingConsumer, RingProducer } from '../src/ring/ring.js';
import { checksum } from './fixtures/ring-records.js';
import { prng } from './helpers/events.js';

function writeOne(producer: RingProducer, body: Buffer): boolean {
  producer.begin();
  const offset = producer.reserve(body.length);
  if (offset < 0) {
    producer.rollback();
    return false;
  }
  body.copy(producer.data, offset);
  producer.commit();
  return true;
}

function readOne(consumer: RingConsumer): Buffer | undefined {
  const span = consumer.next();
  return span && Buffer.from(consumer.data.subarray(span.start, span.end));
}

t.test('capacity must be a power of two within bounds', async (t) => {
  t.throws(() => createRingBuffer(100), /power of two/);
  t.throws(() => createRingBuffer(32), /power of two/);
  const smallest = createRingBuffer(64);
  const producer = new RingProducer(smallest);
  const consumer = new RingConsumer(smallest);
  t.equal(producer.capacity, 64, 'the smallest ring holds 64 data bytes');
  const body = Buffer.alloc(producer.maxRecordBytes, 7);
  t.equal(writeOne(producer, body), true, 'its largest record fits');
  t.same(readOne(consumer), body, 'and reads back intact');
});

t.test('wraps around a tiny buffer many times without splitting a record', async (t) => {
  const ring = createRingBuffer(64);
  const producer = new RingProducer(ring);
  const consumer = new RingConsumer(ring);
  const random = prng(1);
  for (let i = 0; i < 2_000; i++) {
    const body = Buffer.alloc(1 + Math.floor(random() * 27), i % 251);
    t.equal(writeOne(producer, body), true, `record ${i} fits into an empty ring`);
    const read = readOne(consumer);
    consumer.release();
    if (!read || !read.equals(body)) return t.fail(`record ${i} came back different`);
    t.equal(consumer.depth(), 0);
  }
  t.ok(consumer.position > 64 * 100, 'positions kept growing instead of resetting');
});

t.test('positions stay correct across the 2^32 boundary', async (t) => {
  const ring = createRingBuffer(64);
  // Start both positions just below 2^32, as a long-running process eventually would.
  const control = new Int32Array(ring, 0, 64);
  control[0] = control[16] = 0xffffffd0 | 0;
  const producer = new RingProducer(ring);
  const consumer = new RingConsumer(ring);
  for (let i = 0; i < 50; i++) {
    const body = Buffer.from(`record-${i}`);
    t.equal(writeOne(producer, body), true);
    t.equal(readOne(consumer)?.toString(), body.toString());
    consumer.release();
  }
  t.ok(consumer.position < 0xffffffd0, 'the position wrapped past 2^32');
  t.equal(producer.usedBytes(), 0);
});

t.test('a full ring refuses at once and a rolled-back transaction leaves no trace', async (t) => {
  const ring = createRingBuffer(64);
  const producer = new RingProducer(ring);
  const consumer = new RingConsumer(ring);
  let written = 0;
  while (writeOne(producer, Buffer.from([written]))) written++;
  t.equal(written, 8, 'sixty-four bytes hold eight 8-byte records');
  t.equal(producer.usedBytes(), 64);

  producer.begin();
  t.equal(producer.reserve(1), -1, 'no room');
  producer.rollback();
  t.equal(producer.depth(), 8, 'nothing half-written');

  t.equal(readOne(consumer)?.[0], 0);
  t.equal(writeOne(producer, Buffer.from([99])), false, 'space read but not released is still in use');
  consumer.release();
  t.equal(writeOne(producer, Buffer.from([99])), true, 'released space is reused');

  t.equal(readOne(consumer)?.[0], 1);
  consumer.release();
  producer.begin();
  t.ok(producer.reserve(1) >= 0, 'room again once more is released');
  producer.rollback();
  const seen: number[] = [];
  for (let b; (b = readOne(consumer)) !== undefined; ) seen.push(b[0]!);
  t.same(seen, [2, 3, 4, 5, 6, 7, 99], 'the rolled-back record never appeared');
});

t.test('a multi-record transaction is all-or-nothing', async (t) => {
  const ring = createRingBuffer(64);
  const producer = new RingProducer(ring);
  producer.begin();
  t.ok(producer.reserve(20) >= 0);
  t.ok(producer.reserve(20) >= 0);
  t.equal(producer.reserve(20), -1, 'the third does not fit');
  producer.rollback();
  t.equal(producer.depth(), 0);
  t.equal(new RingConsumer(ring).hasNext(), false);
});

t.test('skipTo passes over records up to a position and counts them', async (t) => {
  const ring = createRingBuffer(256);
  const producer = new RingProducer(ring);
  for (let i = 0; i < 5; i++) writeOne(producer, Buffer.from([i]));
  const first = new RingConsumer(ring);
  first.next();
  first.next();
  first.next();
  const checkpoint = first.position;
  // A fresh consumer (as after a crash) resumes from the released position, here 0.
  const second = new RingConsumer(ring);
  t.equal(second.skipTo(checkpoint), 3);
  t.equal(readOne(second)?.[0], 3);
});

t.test('a real worker thread receives random-size records intact, complete and in order', async (t) => {
  const ring = createRingBuffer(4096);
  const producer = new RingProducer(ring);
  const worker = new Worker(new URL('./fixtures/ring-checksum-worker.js', import.meta.url), { workerData: ring });
  const result = new Promise<{ received: number; outOfOrder: number; sum: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });

  const random = prng(42);
  const total = 50_000;
  let sum = 0;
  let refusals = 0;
  for (let i = 0; i < total; i++) {
    const body = Buffer.alloc(4 + Math.floor(random() * 600));
    body.writeUInt32LE(i, 0);
    for (let j = 4; j < body.length; j++) body[j] = Math.floor(random() * 256);
    // The producer never blocks: on a full ring it yields to the event loop and tries again.
    while (!writeOne(producer, body)) {
      refusals++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    sum = checksum(sum, body);
  }
  producer.close();

  const { received, outOfOrder, sum: workerSum } = await result;
  t.equal(received, total, 'no record lost or duplicated');
  t.equal(outOfOrder, 0, 'no record reordered');
  t.equal(workerSum, sum, 'every byte arrived as written');
  t.ok(refusals > 0, 'the small ring filled up and refused writes along the way');
  t.equal(producer.depth(), 0);
});

t.test('a sleeping consumer is woken by the next commit, and one that is busy gets no notify but sees the record', async (t) => {
  const buffer = createRingBuffer(1024);
  const producer = new RingProducer(buffer);
  const consumer = new RingConsumer(buffer);
  const publish = () => {
    producer.begin();
    producer.data.writeUInt32LE(7, producer.reserve(4));
    producer.commit();
  };
  const slowest = { sleeping: 0, busy: 0 };
  for (let i = 0; i < 200; i++) {
    const sleeping = i % 2 === 0;
    const started = performance.now();
    // Asleep: the wait starts first and the commit must wake it. Busy: the commit comes first (no notify
    // is sent, nobody sleeps) and the next wait must return at once. A lost wake-up would cost the timeout.
    if (!sleeping) publish();
    const woken = consumer.waitForData(10_000);
    if (sleeping) setImmediate(publish);
    await woken;
    const ms = performance.now() - started;
    slowest[sleeping ? 'sleeping' : 'busy'] = Math.max(slowest[sleeping ? 'sleeping' : 'busy'], ms);
    t.ok(consumer.next(), 'the record is there');
    consumer.release();
  }
  t.ok(slowest.sleeping < 1_000 && slowest.busy < 1_000, `every wait ended with its record, not the 10 s timeout (${JSON.stringify(slowest)})`);
});
