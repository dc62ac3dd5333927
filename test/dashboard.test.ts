import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import t, { type Test } from 'tap';
import { makeEvent } from './helpers/events.js';
import { startAggregator } from './helpers/in-process.js';
import { requires } from './helpers/requires.js';

/*
 * The dashboard in a real headless Chromium (Debian's package; .ci/run installs it). Set
 * DASHBOARD_SCREENSHOT=<file.png> to keep a picture of the page, as docs/dashboard.png was made.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A real aggregator and the dashboard open in Chromium, once the page shows the consumer ready. */
async function openDashboard(t: Test) {
  const agg = await startAggregator(t);
  const url = await agg.app.listen({ port: 0, host: '127.0.0.1' });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // Evaluated in the page, hence a string: this file is compiled without the DOM's types.
  const waitFor = (expression: string) => page.waitForFunction(expression, null, { timeout: 10_000 });
  await page.goto(`${url}/`);
  await waitFor(`document.getElementById('status').textContent === 'ready'`);
  return { agg, page, waitFor };
}

t.test('the dashboard shows live counts and topics as events arrive', async (t) => {
  if (!requires(t, existsSync(CHROMIUM), `Chromium at ${CHROMIUM}`)) return;
  const { agg, page, waitFor } = await openDashboard(t);
  const text = (id: string) => page.locator(`#${id}`).textContent();
  t.equal(await text('unique'), '0');

  const orders = Array.from({ length: 20 }, () => makeEvent({ topic: 'orders.eu' }));
  const payments = Array.from({ length: 5 }, () => makeEvent({ topic: 'payments <b>bold</b>' }));
  await agg.publish([...orders, ...payments, ...orders.slice(0, 10)]);
  // The refresh that first shows the 25 new events also shows their rate (the next ones fall back to 0/s).
  const rate = await waitFor(`document.getElementById('unique').textContent === '25' && document.getElementById('unique-rate').textContent`);
  t.equal(await text('received'), '35');
  t.equal(await text('duplicates'), '10');
  t.equal(await text('queue'), '0');
  const rows = await page.locator('#topics tr').allTextContents();
  t.same(rows, ['orders.eu20', 'payments <b>bold</b>5'], 'topics with counts, names shown as text, not markup');
  const rateText = String(await rate.jsonValue());
  t.match(rateText, /^\d+\/s$/, 'a per-second rate is shown');
  const perSecond = Number.parseInt(rateText, 10);
  // 25 events over one refresh interval: a second between fetches, but measured between their answers, so a
  // slow first answer (a loaded machine) shortens it; still a rate per second, not a count per millisecond.
  t.ok(perSecond >= 1 && perSecond <= 250, `the 25 new events per refresh interval (${rateText})`);
  if (process.env.DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT });
});

t.test('the dashboard follows a chosen topic live over EventSource, newest first, as text', async (t) => {
  if (!requires(t, existsSync(CHROMIUM), `Chromium at ${CHROMIUM}`)) return;
  const { agg, page, waitFor } = await openDashboard(t);
  // Chromium asks for gzip by itself: each event must still arrive live, through the server's per-write flush.
  const streamEncodings: (string | undefined)[] = [];
  page.on('response', (res) => void (res.url().includes('/events/stream') && streamEncodings.push(res.headers()['content-encoding'])));
  await page.fill('#tail-topic', 'audit <i>x</i>');
  await page.click('#tail-button');
  await waitFor(`document.getElementById('tail-status').textContent === 'following audit <i>x</i>'`);

  const followed = Array.from({ length: 3 }, (_, i) => makeEvent({ topic: 'audit <i>x</i>', payload: { n: i } }));
  await agg.publish([followed[0]!, makeEvent({ topic: 'other' }), followed[1]!]);
  await agg.publish(followed[2]!);
  await waitFor(`document.querySelectorAll('#tail tr').length === 3`);
  const rows = await page.locator('#tail tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  t.same(rows.map((cells) => [cells[1], cells[2], cells[4]]), [...followed].reverse().map((e) => [e.topic, e.event_id, JSON.stringify(e.payload)]),
    'only the followed topic, newest first, names as text');
  const seqs = rows.map((cells) => Number(cells[0]));
  t.ok(seqs[0]! > seqs[1]! && seqs[1]! > seqs[2]!, `seqs descend (${seqs.join(', ')})`);
  t.same(streamEncodings, ['gzip'], 'the live tail came gzip-compressed');
  await page.click('#tail-button');
  t.equal(await page.locator('#tail-status').textContent(), 'not following');
});
