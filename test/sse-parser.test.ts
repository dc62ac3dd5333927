import fc from 'fast-check';
import t from 'tap';
import { SseParser } from '../src/clients/sse-parser.js';
import { startQuery } from '../src/clients/subscriber.js';

const STREAM = 'retry: 2000\n\n: keep-alive\n\nid: 1\nevent: event\ndata: {"seq":1}\n\nid: 2\r\nevent: event\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
  + 'event: gap\ndata: {"after":0,"resumed_after":5}\n\nid: 7\ndata:no space\n\n';
const EXPECTED = [
  { id: '1', event: 'event', data: '{"seq":1}' },
  { id: '2', event: 'event', data: '{"a":\n1}' },
  { id: '2', event: 'gap', data: '{"after":0,"resumed_after":5}' },
  { id: '7', event: 'message', data: 'no space' },
];

t.test('the SSE parser reads ids, events, multi-line data, retry and comments, with any line ending', async (t) => {
  const parser = new SseParser();
  t.same(parser.feed(STREAM), EXPECTED);
  t.equal(parser.retryMs, 2000);
});

t.test('the SSE parser gives the same messages however the stream is cut into chunks', async (t) => {
  fc.assert(fc.property(fc.array(fc.nat(STREAM.length), { maxLength: 12 }), (cuts) => {
    const at = [...new Set(cuts)].sort((a, b) => a - b);
    const parser = new SseParser();
    const messages = [0, ...at].map((start, i) => STREAM.slice(start, at[i] ?? STREAM.length)).flatMap((chunk) => parser.feed(chunk));
    t.same(messages, EXPECTED);
  }), { numRuns: 300 });
});

t.test('subscribe --from and --consumer become the stream query', async (t) => {
  const query = (from: string, consumer?: string) => startQuery({ topics: ['a', 'b'], from, consumer }).toString();
  t.equal(query('earliest'), 'topic=a&topic=b&after=0');
  t.equal(query('latest'), 'topic=a&topic=b');
  t.equal(query('42'), 'topic=a&topic=b&after=42');
  t.equal(query('2026-11-27T10:00:00Z'), 'topic=a&topic=b&since=2026-11-27T10%3A00%3A00Z');
  t.equal(query('earliest', 'billing'), 'topic=a&topic=b&consumer=billing', 'a consumer decides the start');
  t.throws(() => query('yesterday'), /from must be earliest, latest, a seq or an RFC 3339 time/);
  t.equal(startQuery({ from: 42 }).toString(), 'after=42', 'a seq as a number');
  t.equal(startQuery({ from: new Date('2026-11-27T10:00:00Z') }).toString(), 'since=2026-11-27T10%3A00%3A00.000Z', 'a Date');
  t.equal(startQuery({}).toString(), '', 'latest by default');
});
