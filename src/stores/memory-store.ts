/** The memory store: the embedded default store, one bounded table per limit. */
import type { LimitSpec } from "../algorithms/limit-spec.js";
import { Outcome } from "../algorithms/outcome.js";
import type { PenaltyParams } from "../algorithms/penalty-box.js";
import type { RateAlgorithm } from "../algorithms/rate-algorithm.js";
import { InvalidArgumentError } from "../core/errors.js";
import { integerAtLeast } from "../core/validate.js";
import type { LeaseTableOptions, PenaltyTableOptions, RateOp, Store } from "./store.js";
import { MemoryLeaseTable } from "./memory-lease-table.js";
import { MemoryPenaltyTable } from "./memory-penalty-table.js";
import { MemoryRateTable } from "./memory-rate-table.js";
import { MemoryTable, type MemoryTableOptions } from "./memory-table.js";

export interface MemoryStoreOptions {
  /** Most keys each limit may track in this store (default 1,000,000). LRU beyond that. */
  maxKeys?: number;
}

/**
 * The embedded default store. It owns one bounded table per limit name; all
 * of its state hangs off the instance, so two stores in one process share
 * nothing. It answers synchronously and never fails.
 */
export class MemoryStore implements Store<true> {
  readonly sync = true as const;
  readonly kind = "memory" as const;
  readonly storeTime = false;
  readonly failure = undefined;
  readonly maxKeys: number;
  private readonly tables = new Map<string, MemoryTable>();
  private readonly leases = new Map<string, MemoryLeaseTable>();
  private readonly penalties = new Map<string, MemoryPenaltyTable>();
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

  rateTable(name: string, spec: LimitSpec): MemoryRateTable {
    validName(name);
    const algo = spec.algorithm as RateAlgorithm<unknown>;
    const params = spec.params;
    const table = this.table(name, {
      width: algo.width,
      init: (s, off) => algo.init(s, off),
      isIdle: (s, off, now) => algo.isIdle(s, off, now, params),
    });
    // A limit reconfigured under the same name keeps its state and takes the new parameters.
    const rt = new MemoryRateTable(name, spec, table);
    return rt;
  }

  rateAll(ops: readonly RateOp<true>[]): Outcome[] {
    const outs: Outcome[] = [];
    const undo: Float64Array[] = [];
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      const t = op.table as MemoryRateTable;
      const u = new Float64Array(t.table.width);
      const out = t.consumeUndoable(op.key, op.cost, op.now, new Outcome(), u);
      outs.push(out);
      undo.push(u);
      if (!out.allowed && !op.shadow) {
        for (let j = i - 1; j >= 0; j--) (ops[j]!.table as MemoryRateTable).undo(ops[j]!.key, undo[j]!);
        return outs;
      }
    }
    return outs;
  }

  /** Limits of the same name and shape share one table (and its lease ids), as callers sharing a store expect. */
  leaseTable(name: string, o: LeaseTableOptions): MemoryLeaseTable {
    validName(name);
    const existing = this.leases.get(name);
    if (existing !== undefined && existing.limit === o.limit && existing.ttlMs === o.ttlMs) return existing;
    const t = new MemoryLeaseTable(name, o.limit, o.ttlMs, (width, init, isIdle) => this.table(name, { width, init, isIdle }));
    this.leases.set(name, t);
    return t;
  }

  /** Boxes of the same name and parameters share one table; new parameters start a new one. */
  penaltyTable(name: string, params: PenaltyParams, o: PenaltyTableOptions = {}): MemoryPenaltyTable {
    validName(name);
    const maxKeys = integerAtLeast("maxKeys", o.maxKeys ?? 65_536, 1);
    const existing = this.penalties.get(name);
    if (existing !== undefined && existing.maxKeys === maxKeys && sameParams(existing.params, params)) return existing;
    const t = new MemoryPenaltyTable(name, params, maxKeys);
    this.penalties.set(name, t);
    return t;
  }

  generateName(prefix: string): string {
    let name: string;
    do name = `${prefix}-${++this.unnamed}`;
    while (this.tables.has(name) || this.penalties.has(name));
    return name;
  }

  /** Forgets the table of limit `name` (used when a limit is disposed or reconfigured). */
  drop(name: string): void {
    this.tables.delete(name);
    this.leases.delete(name);
    this.penalties.delete(name);
  }

  /** Keys tracked across all tables. */
  get size(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.size;
    for (const t of this.penalties.values()) n += t.size;
    return n;
  }
}

function sameParams(a: PenaltyParams, b: PenaltyParams): boolean {
  return (Object.keys(a) as (keyof PenaltyParams)[]).every((k) => Object.is(a[k], b[k]));
}

function validName(name: unknown): void {
  if (typeof name !== "string" || name.length === 0) throw new InvalidArgumentError("name", "must be a non-empty string");
}
