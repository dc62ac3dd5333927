import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Bytes of one (hash, seq) pair: the pairs region ends every segment file. */
const PAIR_BYTES = 16;

/** The sealed segment files of the store at `dbPath`, full paths. */
export const segmentFiles = (dbPath: string): string[] =>
  readdirSync(`${dbPath}.keys`).filter((name) => name.endsWith('.keys')).map((name) => join(`${dbPath}.keys`, name));

/**
 * The damage of issue 18 (H1), done to every segment file (each must hold more than 11 keys): one
 * flipped bit in the last pair's hash and the ten pairs before it zeroed. Returns how many files it damaged.
 */
export function damageLastPairs(dbPath: string): number {
  let damaged = 0;
  for (const file of segmentFiles(dbPath)) {
    const bytes = readFileSync(file);
    const last = bytes.length - PAIR_BYTES;
    bytes[last] = bytes[last]! ^ 0x01;
    bytes.fill(0, last - 10 * PAIR_BYTES, last);
    writeFileSync(file, bytes);
    damaged++;
  }
  return damaged;
}
