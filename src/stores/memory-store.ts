import { InvalidArgumentError } from "../core/errors.js";
import { integerAtLeast } from "../core/validate.js";
import { MemoryTable, type MemoryTableOptions } from "./memory-table.js";

export interface MemoryStoreOptions {
  /** Most keys each limit may track in this store (default 1,000,000). LRU beyond that. */
  maxKeys?: number;
}

/**
 * The embedded default store. It owns one bounded table per limit name; all
 * of its state hangs off the instance, so two stores in one process share
 * nothing.
 */
export class MemoryStore {
  readonly kind = "memory" as const;
  readonly maxKeys: number;
  private readonly tables = new Map<string, MemoryTable>();
  private unnamed = 0;

  constructor(o: MemoryStoreOptions = {}) {
    this.maxKeys = integerAtLeast("maxKeys", o.maxKeys ?? 1_000_000, 1);
  }

  /** The table of limit `name`, created on first use. A second limit of the same name must agree on width. */
  table(name: string, o: Omit<MemoryTableOptions, "maxKeys"> & { maxKeys?: number }): MemoryTable {
    const existing = this.tables.get(name);
    if (existing) {
      if (existing.width !== o.width) {
        throw new InvalidArgumentError("name", `limit "${name}" already exists in this store with another algorithm`);
      }
      existing.setHooks(o.init, o.isIdle);
      return existing;
    }
    const t = new MemoryTable({ ...o, maxKeys: Math.min(o.maxKeys ?? this.maxKeys, this.maxKeys) });
    this.tables.set(name, t);
    return t;
  }

  /** A limit name not used in this store yet. */
  generateName(prefix: string): string {
    let name: string;
    do name = `${prefix}-${++this.unnamed}`;
    while (this.tables.has(name));
    return name;
  }

  /** Forgets the table of limit `name` (used when a limit is disposed or reconfigured). */
  drop(name: string): void {
    this.tables.delete(name);
  }

  /** Keys tracked across all tables. */
  get size(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.size;
    return n;
  }
}
