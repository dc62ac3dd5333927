/**
 * The newest keys of the dedup index, in memory: key hash → seq of the first event stored with that hash
 * since the last seal. An open-addressing table with linear probing over two Float64Arrays (16 bytes a slot, off the
 * JavaScript heap). It holds only the keys not yet sealed into segments (dedup-index.ts), so it is sized
 * once for DEDUP_HOT_KEYS and does not grow with history; SQLite only ever appends, where a B-tree keyed by
 * a random hash would dirty one page per insert once it outgrows the cache (measured in docs/architecture.md,
 * "Why a hash key, held in memory").
 */
export class KeyIndex {
  private keys: Float64Array;
  private seqs: Float64Array;
  private mask: number;
  private count = 0;

  constructor(capacity = 1 << 16) {
    this.keys = new Float64Array(capacity);
    this.seqs = new Float64Array(capacity);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Slots, used or not: the range `scan` walks. */
  get slots(): number {
    return this.keys.length;
  }

  get memoryBytes(): number {
    return this.keys.byteLength + this.seqs.byteLength;
  }

  /** Empties slots [from, to); the table counts as empty once the last slot is cleared (clear in slices, then reuse). */
  clear(from: number, to: number): void {
    this.keys.fill(0, from, to);
    if (to >= this.keys.length) this.count = 0;
  }

  /** Visits the entries in slots [from, to). */
  scan(from: number, to: number, visit: (hash: number, seq: number) => void): void {
    for (let slot = from; slot < to; slot++) {
      const key = this.keys[slot]!;
      if (key !== 0) visit(key - 1, this.seqs[slot]!);
    }
  }

  /** The seq stored for `hash`, or 0 (seqs start at 1). */
  get(hash: number): number {
    const key = hash + 1; // 0 marks an empty slot
    for (let slot = hash & this.mask; ; slot = (slot + 1) & this.mask) {
      const found = this.keys[slot]!;
      if (found === key) return this.seqs[slot]!;
      if (found === 0) return 0;
    }
  }

  /** Records `hash` → `seq` unless `hash` is present already (the first stored event owns it). */
  add(hash: number, seq: number): void {
    if ((this.count + 1) / this.keys.length > 0.7) this.grow();
    const key = hash + 1;
    for (let slot = hash & this.mask; ; slot = (slot + 1) & this.mask) {
      const found = this.keys[slot]!;
      if (found === key) return;
      if (found === 0) {
        this.keys[slot] = key;
        this.seqs[slot] = seq;
        this.count++;
        return;
      }
    }
  }

  /** Only if sealing fell far behind: a one-off rehash rather than a full table. */
  private grow(): void {
    const { keys, seqs } = this;
    this.keys = new Float64Array(keys.length * 2);
    this.seqs = new Float64Array(keys.length * 2);
    this.mask = this.keys.length - 1;
    this.count = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) this.add(keys[i]! - 1, seqs[i]!);
  }
}
