/**
 * A blocked Bloom filter over 53-bit key hashes: each key sets 8 bits inside one 512-bit block chosen by
 * the hash, so a lookup touches one cache line whatever the filter's size. At 10 bits a key it answers
 * "maybe" for about 1–2 % of absent keys, and "no" for every one of those it never saw — the only answer
 * the dedup index trusts without reading the disk.
 */
export const BLOOM_BITS_PER_KEY = 10;
const BLOCK_WORDS = 16; // 16 × 32 bits = 512 bits = 64 bytes
const BITS_PER_KEY_SET = 8;

/** Bytes of a filter for `keys` keys: whole blocks, at least one. */
export function bloomBytes(keys: number): number {
  return Math.max(1, Math.ceil((keys * BLOOM_BITS_PER_KEY) / 512)) * BLOCK_WORDS * 4;
}

export class BloomFilter {
  private readonly words: Uint32Array;
  private readonly blocks: number;

  /** Over `bytes` (a multiple of 64), e.g. read back from a segment file. */
  constructor(readonly bytes: Uint8Array) {
    this.words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    this.blocks = this.words.length / BLOCK_WORDS;
  }

  static forKeys(keys: number): BloomFilter {
    return new BloomFilter(new Uint8Array(bloomBytes(keys)));
  }

  add(hash: number): void {
    const base = this.blockOf(hash);
    let bits = mix(hash);
    for (let i = 0; i < BITS_PER_KEY_SET; i++, bits = next(bits)) {
      this.words[base + ((bits >>> 27) & 15)]! |= 1 << (bits & 31);
    }
  }

  mayContain(hash: number): boolean {
    const base = this.blockOf(hash);
    let bits = mix(hash);
    for (let i = 0; i < BITS_PER_KEY_SET; i++, bits = next(bits)) {
      if ((this.words[base + ((bits >>> 27) & 15)]! & (1 << (bits & 31))) === 0) return false;
    }
    return true;
  }

  /** The block from the hash's low 32 bits (multiply-shift, no modulo bias worth noting). */
  private blockOf(hash: number): number {
    return Math.floor(((hash >>> 0) * this.blocks) / 4294967296) * BLOCK_WORDS;
  }
}

/** The bit positions come from the hash's high bits, independent of the block choice. */
function mix(hash: number): number {
  const high = Math.floor(hash / 4294967296);
  return next(Math.imul(high ^ 0x5bd1e995, 0x9e3779b1) ^ (hash >>> 0));
}

function next(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b);
  return (x ^ (x >>> 13)) >>> 0;
}
