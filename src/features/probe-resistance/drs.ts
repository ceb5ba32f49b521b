/**
 * Dynamic record sizing (DRS) for connections where the gateway terminates
 * TLS. A fresh connection's first records are small enough that each fits
 * one TCP segment (as a web server tuned for time-to-first-byte does), then
 * grow: 40 records of at most 1369 bytes of payload, 20 of at most 4096, then
 * full 16384-byte records. A relay that always writes full records from the
 * first byte has a recognisable packet shape; this removes it.
 *
 * How: each SSL_write of at most 16384 bytes becomes exactly one TLS record,
 * and a TLSSocket performs one SSL_write per _write call (the write callback
 * waits for it, even while the handshake is still under way). During the
 * ramp DRS hands the socket one record's worth of plaintext per _write, so
 * it both shapes and counts records exactly. Once the ramp is done the
 * counter saturates, the socket's own write path is restored, and a
 * long-lived connection pays nothing and never restarts the ramp.
 *
 * Why not tlsSocket.setMaxSendFragment: lowering it also lowers OpenSSL's
 * split_send_fragment, which Node cannot raise again, so a connection whose
 * fragment was lowered to 1369 would stay at 1369-byte records for good.
 */
import type tls from "node:tls";
import { type Clock, type TimerHandle, systemClock } from "../../core/clock.js";

/** MSS-safe payload: 1369 + 5 (header) + 17 (TLS 1.3 AEAD) .. + 29 (TLS 1.2 GCM) fits one 1448-byte segment. */
export const DRS_SMALL_RECORD = 1369;
export const DRS_MEDIUM_RECORD = 4096;
/** RFC 8446: the largest TLS plaintext record. */
export const DRS_FULL_RECORD = 16_384;
export const DRS_SMALL_RECORDS = 40;
export const DRS_MEDIUM_RECORDS = 20;
/** The counter stops here: from this record on every record may be full-size. */
export const DRS_SATURATED = DRS_SMALL_RECORDS + DRS_MEDIUM_RECORDS;

/** Largest payload for the record with 0-based index `n`. */
export function drsRecordLimit(n: number): number {
  if (n < DRS_SMALL_RECORDS) return DRS_SMALL_RECORD;
  if (n < DRS_SATURATED) return DRS_MEDIUM_RECORD;
  return DRS_FULL_RECORD;
}

type WriteCb = (err?: Error | null) => void;
type WriteFn = (chunk: Buffer | string, encoding: BufferEncoding | "buffer", cb: WriteCb) => void;

/** The Writable implementation hooks of a TLSSocket that DRS interposes on. */
interface WritableHooks {
  _write: WriteFn;
  _writev: unknown;
}

export interface DrsHandle {
  /** Records sent through the ramp so far (saturates at DRS_SATURATED). */
  readonly records: number;
  /** True once the ramp is over and the socket writes as if DRS had never been applied. */
  readonly saturated: boolean;
}

export interface DrsOptions {
  /**
   * How long a partial record waits for more data before it goes out short
   * (default 5 ms). Only during the ramp (the first 60 records): a relay
   * that reads its upstream in 64 KiB pieces would otherwise cut a short
   * record at every read boundary.
   */
  flushMs?: number;
  clock?: Clock;
}

export const DRS_DEFAULT_FLUSH_MS = 5;

type FinalFn = (cb: (err?: Error | null) => void) => void;

/**
 * Applies DRS to a server-side TLSSocket before any application data is
 * written to it. With `enabled = false` it changes nothing (OpenSSL's
 * default: records of up to 16384 bytes from the first one).
 * Bytes are written in order, each exactly once. A partial record is carried
 * into the next write (so record sizes on the wire do not depend on how the
 * data was cut), and goes out short only when no more data comes within
 * `flushMs` or the socket is ended.
 */
export function applyDrs(socket: tls.TLSSocket, enabled = true, o: DrsOptions = {}): DrsHandle {
  const state = { records: 0, saturated: !enabled };
  if (!enabled) return state;
  const clock = o.clock ?? systemClock;
  const flushMs = o.flushMs ?? DRS_DEFAULT_FLUSH_MS;
  const hooks = socket as unknown as WritableHooks & { _final: FinalFn };
  const ownWrite = hooks._write;
  const ownFinal = hooks._final;
  const saved = {
    write: Object.getOwnPropertyDescriptor(hooks, "_write"),
    writev: Object.getOwnPropertyDescriptor(hooks, "_writev"),
    final: Object.getOwnPropertyDescriptor(hooks, "_final"),
  };
  /** The start of the next record, waiting for more data. */
  let carry: Buffer | undefined;
  let flushTimer: TimerHandle | undefined;
  /** A short record is being written on its own: the next write waits for it. */
  let flushing = false;
  let afterFlush: (() => void) | undefined;

  const restore = (name: "_write" | "_writev" | "_final", d: PropertyDescriptor | undefined) => {
    delete (hooks as Partial<typeof hooks>)[name];
    if (d) Object.defineProperty(hooks, name, d);
  };
  let restored = false;
  /** Once saturated with nothing carried: put back exactly what was there (usually nothing, so the prototype's hooks take over). */
  const tryRestore = () => {
    if (restored || !state.saturated || carry !== undefined || flushing) return;
    restored = true;
    restore("_write", saved.write);
    restore("_writev", saved.writev);
    restore("_final", saved.final);
  };
  const saturate = () => {
    state.saturated = true;
    tryRestore();
  };
  const counted = (e?: Error | null) => {
    if (!e && state.records >= DRS_SATURATED && !state.saturated) saturate();
  };

  /** Writes the carried bytes as one (short) record; `done` runs when it is written. */
  const flush = (done?: (err?: Error | null) => void) => {
    flushTimer?.cancel();
    flushTimer = undefined;
    if (carry === undefined) return done?.();
    const piece = carry;
    carry = undefined;
    flushing = true;
    state.records++;
    ownWrite.call(socket, piece, "buffer", (e?: Error | null) => {
      flushing = false;
      counted(e);
      tryRestore();
      if (e) socket.destroy(e);
      const next = afterFlush;
      afterFlush = undefined;
      done?.(e);
      next?.();
    });
  };
  socket.once("close", () => flushTimer?.cancel());

  // Batched writes would let OpenSSL pack several chunks per SSL_write and break the count.
  hooks._writev = null;
  hooks._write = function drsWrite(data: Buffer | string, encoding: BufferEncoding | "buffer", cb: WriteCb): void {
    if (flushing) {
      afterFlush = () => drsWrite(data, encoding, cb);
      return;
    }
    flushTimer?.cancel();
    flushTimer = undefined;
    // net.Socket does not decode strings before _write; records are counted in bytes, so decode here.
    const fresh = typeof data === "string" ? Buffer.from(data, encoding === "buffer" ? "utf8" : encoding) : data;
    const chunk = carry === undefined ? fresh : Buffer.concat([carry, fresh]);
    carry = undefined;
    let offset = 0;
    const next = (err?: Error | null): void => {
      if (err) return cb(err);
      if (offset >= chunk.length) return cb();
      if (state.saturated) {
        // The rest goes in full-size records through the socket's own path.
        const rest = chunk.subarray(offset);
        offset = chunk.length;
        return ownWrite.call(socket, rest, "buffer", cb);
      }
      const limit = drsRecordLimit(state.records);
      if (chunk.length - offset < limit) {
        // Not a whole record: carry it into the next write, or send it short if nothing follows in time.
        carry = Buffer.from(chunk.subarray(offset));
        offset = chunk.length;
        flushTimer = clock.setTimer(() => flush(), flushMs);
        return cb();
      }
      const piece = chunk.subarray(offset, offset + limit);
      offset += piece.length;
      state.records++;
      ownWrite.call(socket, piece, "buffer", (e?: Error | null) => {
        counted(e);
        next(e);
      });
    };
    next();
  };
  // The end of the stream sends what is carried first.
  hooks._final = function drsFinal(cb: (err?: Error | null) => void): void {
    const end = () => flush((e) => (e ? cb(e) : ownFinal.call(socket, cb)));
    if (flushing) afterFlush = end;
    else end();
  };
  return state;
}
