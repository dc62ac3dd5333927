import { randomUUID } from 'node:crypto';
import type { PublishedEvent } from '../../src/event.js';

/** What tests publish: the event exactly as the server's schema declares it. */
export type TestEvent = PublishedEvent;

export function makeEvent(overrides: Partial<TestEvent> = {}): TestEvent {
  return {
    topic: 'orders.eu',
    event_id: randomUUID(),
    timestamp: '2026-11-24T10:00:00.123Z',
    source: 'checkout-svc',
    payload: { amount: 42, currency: 'EUR' },
    ...overrides,
  };
}

export const keyOf = (e: { topic: string; event_id: string }): string => `${e.topic}\u0000${e.event_id}`;

/** A deterministic PRNG (mulberry32) so a failing run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
