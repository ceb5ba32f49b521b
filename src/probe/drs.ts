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

/**
 * Applies DRS to a server-side TLSSocket before any application data is
 * written to it. With `enabled = false` it changes nothing (OpenSSL's
 * default: records of up to 16384 bytes from the first one).
 * Bytes are written in order, each exactly once; write callbacks and
 * backpressure behave as on the bare socket.
 */
export function applyDrs(socket: tls.TLSSocket, enabled = true): DrsHandle {
  const state = { records: 0, saturated: !enabled };
  if (!enabled) return state;
  const hooks = socket as unknown as WritableHooks;
  const ownWrite = hooks._write;
  const saved = { write: Object.getOwnPropertyDescriptor(hooks, "_write"), writev: Object.getOwnPropertyDescriptor(hooks, "_writev") };

  const saturate = () => {
    state.saturated = true;
    // Put back exactly what was there: usually nothing, so the prototype's _write and _writev take over again.
    delete (hooks as Partial<WritableHooks>)._write;
    delete (hooks as Partial<WritableHooks>)._writev;
    if (saved.write) Object.defineProperty(hooks, "_write", saved.write);
    if (saved.writev) Object.defineProperty(hooks, "_writev", saved.writev);
  };

  // Batched writes would let OpenSSL pack several chunks per SSL_write and break the count.
  hooks._writev = null;
  hooks._write = function drsWrite(data: Buffer | string, encoding: BufferEncoding | "buffer", cb: WriteCb): void {
    // net.Socket does not decode strings before _write; records are counted in bytes, so decode here.
    const chunk = typeof data === "string" ? Buffer.from(data, encoding === "buffer" ? "utf8" : encoding) : data;
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
      const piece = chunk.subarray(offset, offset + limit);
      offset += piece.length;
      state.records++;
      ownWrite.call(socket, piece, "buffer", (e?: Error | null) => {
        if (!e && state.records >= DRS_SATURATED && !state.saturated) saturate();
        next(e);
      });
    };
    next();
  };
  return state;
}
