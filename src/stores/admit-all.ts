/**
 * An admission as one store operation: several concurrency leases and rate
 * checks (a new connection's global and per-address caps, its rates), all
 * or nothing. A store that can do it in one step implements
 * `Store.admitAll` / `Store.releaseAll` (Redis: one script call); on any
 * other store these functions run the operations one by one and undo what
 * was taken when one refuses.
 *
 * Generic form: the leases in order (on an asynchronous store sent
 * together), then the rates through `rateAll` (itself all or nothing). A
 * refusal releases the leases taken. On a synchronous store nothing runs
 * in between, so the result is as atomic as the native form; on an
 * asynchronous one another client may see a lease for the moment between
 * its taking and its release.
 */
import type { Outcome } from "../algorithms/outcome.js";
import { type AdmitAnswer, type AdmitOps, FAILED, type Failed, type LeaseGrant, type LeaseOp, type LeaseRelease, type Reply, type Store } from "./store.js";

/** Takes `ops.leases` and charges `ops.rates`, all or nothing (see AdmitAnswer); FAILED when the store did not answer. */
export function admitAll<S extends boolean>(store: Store<S>, ops: AdmitOps<S>): Reply<S, AdmitAnswer | Failed> {
  if (store.admitAll !== undefined) return store.admitAll(ops);
  if (store.sync) return admitSync(store as Store<true>, ops as AdmitOps<true>) as Reply<S, AdmitAnswer | Failed>;
  return admitEach(store as Store<false>, ops as AdmitOps<false>) as Reply<S, AdmitAnswer | Failed>;
}

/** Ends every lease of `ops` (false for one not held); FAILED when the store did not answer. */
export function releaseAll<S extends boolean>(store: Store<S>, ops: readonly LeaseRelease<S>[]): Reply<S, boolean[] | Failed> {
  if (store.releaseAll !== undefined) return store.releaseAll(ops);
  if (store.sync) {
    const out: boolean[] = [];
    for (const o of ops as readonly LeaseRelease<true>[]) out.push(o.table.release(o.key, o.id, o.now) === true);
    return out as Reply<S, boolean[] | Failed>;
  }
  return releaseEach(ops as readonly LeaseRelease<false>[]) as Reply<S, boolean[] | Failed>;
}

/** True when the op's answer stops the admission (a refusal of a limit not in shadow mode). */
function stops(op: LeaseOp, g: LeaseGrant): boolean {
  return g.held < 0 && !op.shadow;
}

function refusedRate(ops: AdmitOps, outs: readonly Outcome[]): boolean {
  return outs.some((o, i) => !o.allowed && !ops.rates[i]!.shadow);
}

function admitSync(store: Store<true>, ops: AdmitOps<true>): AdmitAnswer | Failed {
  const leases: LeaseGrant[] = [];
  const undo = (): void => {
    leases.forEach((g, i) => {
      const op = ops.leases[i]!;
      if (g.held >= 0) op.table.release(op.key, g.id, op.now);
    });
  };
  for (const op of ops.leases) {
    const g = op.table.acquire(op.key, op.now);
    if (g === FAILED) {
      undo();
      return FAILED;
    }
    leases.push(g);
    if (stops(op, g)) {
      undo();
      return { leases, rates: [] };
    }
  }
  if (ops.rates.length === 0) return { leases, rates: [] };
  const rates = store.rateAll(ops.rates);
  if (rates === FAILED || refusedRate(ops, rates)) undo();
  return rates === FAILED ? FAILED : { leases, rates };
}

/** The generic form on an asynchronous store (also a native store's answer for operations it cannot send as one call). */
export async function admitEach(store: Store<false>, ops: AdmitOps<false>): Promise<AdmitAnswer | Failed> {
  // Sent together, so a store that batches sends them in one round trip.
  const grants = await Promise.all(ops.leases.map((op) => op.table.acquire(op.key, op.now)));
  const undo = (): void => {
    grants.forEach((g, i) => {
      const op = ops.leases[i]!;
      if (g !== FAILED && g.held >= 0) void op.table.release(op.key, g.id, op.now);
    });
  };
  if (grants.includes(FAILED)) {
    undo();
    return FAILED;
  }
  const leases = grants as LeaseGrant[];
  const stop = leases.findIndex((g, i) => stops(ops.leases[i]!, g));
  if (stop >= 0) {
    undo();
    return { leases: leases.slice(0, stop + 1), rates: [] };
  }
  if (ops.rates.length === 0) return { leases, rates: [] };
  const rates = await store.rateAll(ops.rates);
  if (rates === FAILED || refusedRate(ops, rates)) undo();
  return rates === FAILED ? FAILED : { leases, rates };
}

/** The generic release on an asynchronous store: the releases sent together. */
export async function releaseEach(ops: readonly LeaseRelease<false>[]): Promise<boolean[] | Failed> {
  const r = await Promise.all(ops.map((o) => o.table.release(o.key, o.id, o.now)));
  return r.includes(FAILED) ? FAILED : (r as boolean[]);
}
