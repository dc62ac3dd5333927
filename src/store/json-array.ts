import { ByteBuilder, type Part } from '../lib/byte-builder.js';

/** A page's first allocation: most pages are far smaller than their cap. */
const FIRST_BYTES = 64 * 1024;

/**
 * A JSON array of `items` (each given as its parts) within `maxBytes`: it stops before the item that would
 * pass the cap, but always holds at least one, so a reader paging with after= always moves on. The bytes
 * are in a buffer of their own (never a pooled slab), so they can be transferred to another thread.
 * `expectedBytes`: the page's size if known (its first allocation; a page that fills it exactly is not copied).
 */
export function jsonArrayWithin(items: Iterable<Part[]>, maxBytes: number, expectedBytes = FIRST_BYTES): { page: Uint8Array; count: number } {
  const out = new ByteBuilder(Math.min(maxBytes, expectedBytes));
  out.text('[');
  let count = 0;
  for (const parts of items) {
    const before = out.length;
    if (count > 0) out.text(',');
    for (const part of parts) out.append(part);
    // Each item counts the ',' or ']' after it.
    if (count > 0 && out.length + 1 > maxBytes) {
      out.truncate(before);
      break;
    }
    count++;
  }
  out.text(']');
  return { page: out.take(), count };
}
