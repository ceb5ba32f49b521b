/** The bounded table of fixed-width numeric state behind the memory store. */
import { integerAtLeast } from "../core/validate.js";

/**
 * A bounded table of fixed-width numeric state, the storage behind the memory
 * store. One Map gives key → slot; the state of every slot lives in one
 * Float64Array, and the LRU order in two Int32Arrays (prev/next), so a
 * tracked key costs its Map entry plus `8 · width + 12` bytes, and no object.
 *
 * Expiry is lazy: algorithms keep their own time in state (a stale window
 * simply reads as fresh), and the store only needs to reclaim slots. It does
 * so without timers: each insert looks at the least recently used slot and
 * frees it if it is idle; when the table is full the least recently used
 * key is evicted.
 */
export interface MemoryTableOptions {
  readonly width: number;
  readonly maxKeys: number;
  /** Writes the state of a new key at `s[o ..]`. */
  readonly init: (s: Float64Array, o: number) => void;
  /** True when the state at `s[o ..]` reads as a fresh key at `now`; such slots are reclaimed first. */
  readonly isIdle: (s: Float64Array, o: number, now: number) => boolean;
}

const NONE = -1;
/** Idle slots looked at per insert: a small constant, so inserts stay O(1). */
const SWEEP_PER_INSERT = 2;
const INITIAL_CAPACITY = 1024;

export class MemoryTable {
  readonly width: number;
  readonly maxKeys: number;
  /** State of every slot; slot i occupies [i · width, (i + 1) · width). */
  state: Float64Array;
  private prev: Int32Array;
  private next: Int32Array;
  private readonly keys: (string | undefined)[] = [];
  private readonly index = new Map<string, number>();
  private init: MemoryTableOptions["init"];
  private isIdle: MemoryTableOptions["isIdle"];
  private head = NONE; // most recently used
  private tail = NONE; // least recently used
  private freeList = NONE;
  private capacity: number;
  private highWater = 0;
  private evicted = 0;
  private reclaimed = 0;

  constructor(o: MemoryTableOptions) {
    this.width = integerAtLeast("width", o.width, 1);
    this.maxKeys = integerAtLeast("maxKeys", o.maxKeys, 1);
    this.init = o.init;
    this.isIdle = o.isIdle;
    this.capacity = Math.min(INITIAL_CAPACITY, this.maxKeys);
    this.state = new Float64Array(this.capacity * this.width);
    this.prev = new Int32Array(this.capacity);
    this.next = new Int32Array(this.capacity);
  }

  /** Replaces the state hooks, for a limit reconfigured with new parameters under the same name. */
  setHooks(init: MemoryTableOptions["init"], isIdle: MemoryTableOptions["isIdle"]): void {
    this.init = init;
    this.isIdle = isIdle;
  }

  get size(): number {
    return this.index.size;
  }

  /** Keys evicted while still live because the table was full. */
  get evictions(): number {
    return this.evicted;
  }

  /** Idle keys reclaimed by the insert-time sweep. */
  get reclaims(): number {
    return this.reclaimed;
  }

  /** True when the table is full and its least recently used key is still live. */
  saturated(now: number): boolean {
    return this.index.size >= this.maxKeys && this.tail !== NONE && !this.isIdle(this.state, this.tail * this.width, now);
  }

  /** The slot of `key`, or -1; does not change the LRU order. */
  find(key: string): number {
    const slot = this.index.get(key);
    return slot === undefined ? NONE : slot;
  }

  /** The slot of `key`, created (initialised) if missing, and marked most recently used. */
  slot(key: string, now: number): number {
    const found = this.index.get(key);
    if (found !== undefined) {
      if (found !== this.head) this.moveToFront(found);
      return found;
    }
    return this.insert(key, now);
  }

  delete(key: string): boolean {
    const slot = this.index.get(key);
    if (slot === undefined) return false;
    this.release(slot);
    return true;
  }

  clear(): void {
    this.index.clear();
    this.keys.length = 0;
    this.head = this.tail = this.freeList = NONE;
    this.highWater = 0;
  }

  /** Keys from most to least recently used (for inspection and tests; O(n)). */
  *keysByRecency(): IterableIterator<string> {
    for (let s = this.head; s !== NONE; s = this.next[s]!) yield this.keys[s]!;
  }

  private insert(key: string, now: number): number {
    for (let i = 0; i < SWEEP_PER_INSERT && this.tail !== NONE; i++) {
      if (!this.isIdle(this.state, this.tail * this.width, now)) break;
      this.release(this.tail);
      this.reclaimed++;
    }
    if (this.index.size >= this.maxKeys) {
      this.release(this.tail);
      this.evicted++;
    }
    const slot = this.allocate();
    this.keys[slot] = key;
    this.index.set(key, slot);
    this.init(this.state, slot * this.width);
    this.linkFront(slot);
    return slot;
  }

  private allocate(): number {
    if (this.freeList !== NONE) {
      const slot = this.freeList;
      this.freeList = this.next[slot]!;
      return slot;
    }
    if (this.highWater === this.capacity) this.grow();
    return this.highWater++;
  }

  private grow(): void {
    const cap = Math.min(this.capacity * 2, this.maxKeys);
    const state = new Float64Array(cap * this.width);
    state.set(this.state);
    const prev = new Int32Array(cap);
    prev.set(this.prev);
    const next = new Int32Array(cap);
    next.set(this.next);
    this.state = state;
    this.prev = prev;
    this.next = next;
    this.capacity = cap;
  }

  private release(slot: number): void {
    this.unlink(slot);
    this.index.delete(this.keys[slot]!);
    this.keys[slot] = undefined;
    this.next[slot] = this.freeList;
    this.freeList = slot;
  }

  private moveToFront(slot: number): void {
    this.unlink(slot);
    this.linkFront(slot);
  }

  private linkFront(slot: number): void {
    this.prev[slot] = NONE;
    this.next[slot] = this.head;
    if (this.head !== NONE) this.prev[this.head] = slot;
    this.head = slot;
    if (this.tail === NONE) this.tail = slot;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot]!;
    const n = this.next[slot]!;
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
  }
}
