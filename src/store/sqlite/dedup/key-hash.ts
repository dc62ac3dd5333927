/**
 * A 53-bit hash of an event's identity (cyrb53: two 32-bit multiply-xorshift lanes). 53 bits keep it an
 * exact JavaScript number and a SQLite INTEGER. It only has to spread keys evenly: the store resolves
 * collisions exactly, so its quality costs speed, never correctness.
 */
export type KeyHash = (topic: string, eventId: string) => number;

export const cyrb53Key: KeyHash = (topic, eventId) => {
  // Topics hold no control characters, so NUL separates the two parts unambiguously.
  const text = `${topic}\u0000${eventId}`;
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
};
