/**
 * Reads the start of a connection until the ClientHello can be classified or
 * a byte/time bound is hit, keeping every byte read. The bytes are then
 * either replayed into a TLS server socket (the gateway terminates TLS) or
 * handed, with the untouched socket, to the mask relay (the prober talks to
 * the real site, starting with the very bytes it sent).
 */
import type net from "node:net";
import type tls from "node:tls";
import { tlsModule } from "../../core/lazy-tls.js";
import { type Clock, systemClock } from "../../core/clock.js";
import { type ClientHelloVerdict, DEFAULT_MAX_HELLO_BYTES, parseClientHello } from "./client-hello.js";

export type PeekVerdict =
  | Exclude<ClientHelloVerdict, { kind: "need-more-bytes" }>
  /** The client stopped (EOF, error) or the time bound passed before a verdict. */
  | { kind: "incomplete"; reason: "timeout" | "eof" | "error" | "stopped" };

export interface PeekResult {
  verdict: PeekVerdict;
  /** Every byte read from the socket, in order; replay them before anything else. */
  bytes: Buffer;
}

export interface PeekOptions {
  /** Most bytes to buffer while classifying (default DEFAULT_MAX_HELLO_BYTES). */
  maxBytes?: number;
  /** Longest wait for a verdict in ms (default 10,000). */
  timeoutMs?: number;
  clock?: Clock;
  /** Ends the peek without a verdict ("stopped"), e.g. when the mask host dialled early has answered or closed. */
  signal?: AbortSignal;
}

export const DEFAULT_PEEK_TIMEOUT_MS = 10_000;

/**
 * Classifies the socket's first bytes. On return the socket is paused, has no
 * listener of ours left on it, and has consumed exactly `bytes` (a chunk that
 * straddles the verdict is kept whole, so nothing is ever lost). If the
 * client had already sent EOF, `socket.readableEnded` is true.
 */
export function peekClientHello(socket: net.Socket, o: PeekOptions = {}): Promise<PeekResult> {
  const maxBytes = o.maxBytes ?? DEFAULT_MAX_HELLO_BYTES;
  const clock = o.clock ?? systemClock;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let done = false;
    const finish = (verdict: PeekVerdict) => {
      if (done) return;
      done = true;
      timer.cancel();
      o.signal?.removeEventListener("abort", onAbort);
      socket.pause();
      socket.removeListener("data", onData);
      socket.removeListener("end", onEnd);
      socket.removeListener("error", onError);
      socket.removeListener("close", onClose);
      resolve({ verdict, bytes: Buffer.concat(chunks, total) });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      const v = parseClientHello(Buffer.concat(chunks, total), maxBytes);
      if (v.kind !== "need-more-bytes") finish(v);
    };
    const onEnd = () => finish({ kind: "incomplete", reason: "eof" });
    const onError = () => finish({ kind: "incomplete", reason: "error" });
    const onClose = () => finish({ kind: "incomplete", reason: "error" });
    const onAbort = () => finish({ kind: "incomplete", reason: "stopped" });
    const timer = clock.setTimer(() => finish({ kind: "incomplete", reason: "timeout" }), o.timeoutMs ?? DEFAULT_PEEK_TIMEOUT_MS);
    if (o.signal?.aborted) {
      queueMicrotask(onAbort);
    } else {
      o.signal?.addEventListener("abort", onAbort, { once: true });
    }
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.resume();
  });
}

/**
 * Hands a peeked socket to TLS termination: the bytes go back in front of
 * the socket's read queue and a server-side TLSSocket is built on it (Node
 * feeds a wrapped socket's buffered bytes to the TLS engine first).
 */
export function replayIntoTls(socket: net.Socket, bytes: Buffer, options: tls.TLSSocketOptions): tls.TLSSocket {
  if (bytes.length > 0) socket.unshift(bytes);
  return new (tlsModule().TLSSocket)(socket, { ...options, isServer: true });
}
