/**
 * Reads a socket into buffers the gateway owns (Node's `onread` option)
 * instead of a fresh 64 KiB buffer per read, so a busy relay allocates
 * nothing per chunk. Node's own path hands every read a new buffer that
 * only garbage collection frees; in a process with the gateway's code
 * loaded, V8 then ran old-space collections up to every 50 ms and a
 * relayed stream moved a half to two thirds of what a bare `pipe` moved.
 * Written by hand because this is the relay itself (no library does it).
 *
 * A pump has two modes:
 * - `push` (the start): each read is copied and pushed into the socket's
 *   readable side, so 'data', `pipe` and the shaped relay work unchanged.
 * - `direct`: each read is written straight to the other socket inside
 *   the read callback.
 *
 * Buffers. Every socket starts on the pool's one *shared* 64 KiB buffer:
 * whatever lands there is copied out before the read callback returns
 * (a push, or in direct mode a short read), so it is free again for the
 * next socket and an idle connection holds no buffer at all. In direct
 * mode a read of 16 KiB or more moves the socket to a 64 KiB buffer of its
 * own from the pool, which it writes from without a copy: a write the
 * kernel took at once leaves the buffer free; a write still pending holds
 * it, and the socket reads nothing until that write is done (the one chunk
 * in flight that `pipe` allows a 64 KiB chunk). A short read sends the
 * socket back to the shared buffer and its own goes back to the pool, as it
 * does when the socket closes.
 */
import net from "node:net";
import type { Writable } from "node:stream";

const SIZE = 64 * 1024;
/** Reads at least this long are written from a buffer of the socket's own; shorter ones are copied. */
const BULK = 16 * 1024;

/**
 * The read buffers of one gateway: the shared landing buffer, and free
 * 64 KiB buffers for sockets that move bulk data.
 */
export class ReadBufferPool {
  /** Every pumped socket reads here until it moves bulk data; nothing stays in it past a read callback. */
  readonly shared = Buffer.allocUnsafeSlow(SIZE);
  private readonly free: Buffer[] = [];
  constructor(private readonly maxFree = 256) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(SIZE);
  }

  give(b: Buffer): void {
    if (b !== this.shared && this.free.length < this.maxFree) this.free.push(b);
  }

  /** Free 64 KiB buffers. */
  get idle(): number {
    return this.free.length;
  }
}

/** Each pumped socket's pump, kept here rather than on the socket: nothing is added to a socket's own fields. */
const pumps = new WeakMap<object, ReadPump>();

export class ReadPump {
  private current: Buffer;
  private lastRead = 0;
  private src: net.Socket | undefined;
  private dst: Writable | undefined;
  /** The buffer a pending write still reads from; nothing is read until it is done. */
  private held: Buffer | undefined;
  /** Reading stopped until every write issued so far is done (writes finish in order). */
  private paused = false;
  private issued = 0;
  private done = 0;
  /** The socket's own buffer goes back to the pool when the write holding it is done. */
  private giveBackWhenDone = false;
  // Bound methods rather than named arrows: a pump is made per socket, and where names are kept (tsx)
  // every named arrow costs a property definition.
  private readonly onWritten: (err?: Error | null) => void = this.written.bind(this);

  /** The socket option: Node calls `buffer` once at the start and after every read. */
  readonly onread: { buffer: () => Buffer; callback: (n: number, buf: Buffer) => boolean } = { buffer: this.next.bind(this), callback: this.read.bind(this) };

  constructor(private readonly pool: ReadBufferPool) {
    this.current = pool.shared;
  }

  /** Ties the pump to the socket it reads (made with `onread`). */
  attach(s: net.Socket): net.Socket {
    this.src = s;
    pumps.set(s, this);
    // A closed socket reads no more: its own buffer can serve another, unless a write still holds it.
    // ('close' comes once: a plain listener does what `once` would, without its wrapper.)
    s.on("close", () => this.closed());
    return s;
  }

  private closed(): void {
    if (this.current !== this.held) this.pool.give(this.current);
    this.current = this.pool.shared;
  }

  get mode(): "push" | "direct" {
    return this.dst === undefined ? "push" : "direct";
  }

  /**
   * From now on every read is written to `dst`, and the end of the stream
   * ends `dst` once its writes are out (as `pipe` does). Whatever push mode
   * left in the readable buffer goes first.
   */
  direct(dst: Writable): void {
    const src = this.src!;
    this.dst = dst;
    for (let chunk: Buffer | null; (chunk = src.read() as Buffer | null) !== null; ) dst.write(chunk);
    if (src.readableEnded) endUnlessDone(dst);
    else src.on("end", () => endUnlessDone(dst));
    src.resume();
  }

  private read(n: number, buf: Buffer): boolean {
    this.lastRead = n;
    const dst = this.dst;
    // The shared buffer is copied out before returning: the next socket's read lands in it.
    if (dst === undefined) return this.src!.push(Buffer.from(buf.subarray(0, n)));
    if (dst.destroyed) return false;
    this.issued++;
    if (buf === this.pool.shared) {
      // A copy: the writer may keep it; read on while the writer keeps up.
      if (dst.write(Buffer.from(buf.subarray(0, n)), this.onWritten)) return true;
      this.paused = true;
      return false;
    }
    dst.write(buf.subarray(0, n), this.onWritten);
    if (dst.writableLength === 0) return true;
    this.held = buf;
    this.paused = true;
    return false;
  }

  private written(err?: Error | null): void {
    this.done++;
    if (!this.paused || this.done !== this.issued) return;
    this.paused = false;
    const held = this.held;
    this.held = undefined;
    if (held !== undefined && this.giveBackWhenDone) {
      this.giveBackWhenDone = false;
      this.pool.give(held);
    }
    if (!err && !this.src!.destroyed) this.src!.resume();
  }

  /** The buffer for the next read. No read happens while a write holds a buffer, so any choice is free to fill. */
  private next(): Buffer {
    const cur = this.current;
    const shared = this.pool.shared;
    if (this.dst === undefined) return cur;
    if (cur === shared) {
      if (this.lastRead >= BULK) this.current = this.pool.take();
    } else if (this.lastRead < BULK) {
      this.current = shared;
      if (this.held === cur) this.giveBackWhenDone = true;
      else this.pool.give(cur);
    }
    return this.current;
  }
}

function endUnlessDone(dst: Writable): void {
  if (!dst.writableEnded && !dst.destroyed) dst.end();
}

/** The pump of a socket made by `adopt` or `connectPumped`, if any. */
export function pumpOf(s: object): ReadPump | undefined {
  return pumps.get(s);
}

interface WithHandle {
  _handle: { useUserBuffer?: (b: Buffer) => void } | null;
}

/**
 * The keys under which Node's own socket keeps the `onread` option
 * (lib/net.js: kBuffer, kBufferGen, kBufferCb), found once by their
 * descriptions on a socket that has no handle. Undefined where this Node
 * keeps them differently.
 */
const ONREAD_KEYS = ((): { buffer: symbol; gen: symbol; callback: symbol } | undefined => {
  const own = Object.getOwnPropertySymbols(new net.Socket());
  const key = (d: string): symbol | undefined => own.find((k) => k.description === d);
  const buffer = key("kBuffer");
  const gen = key("kBufferGen");
  const callback = key("kBufferCb");
  return buffer && gen && callback ? { buffer, gen, callback } : undefined;
})();

/**
 * Makes a freshly accepted, still paused socket read through a pump, by
 * giving it the pump's `onread` in place, as the socket constructor would
 * have set it (no second socket per connection). Returns the socket, or
 * `undefined` (it keeps Node's own reads) where this Node cannot read into
 * a user buffer or keeps the option under other keys.
 */
export function adopt(raw: net.Socket, pool: ReadBufferPool): net.Socket | undefined {
  const handle = (raw as unknown as WithHandle)._handle;
  if (ONREAD_KEYS === undefined || handle === null || typeof handle.useUserBuffer !== "function" || raw.readableFlowing === true) return undefined;
  const pump = new ReadPump(pool);
  const first = pump.onread.buffer();
  const s = raw as unknown as Record<symbol, unknown>;
  s[ONREAD_KEYS.gen] = pump.onread.buffer;
  s[ONREAD_KEYS.callback] = pump.onread.callback;
  s[ONREAD_KEYS.buffer] = first;
  handle.useUserBuffer(first);
  return pump.attach(raw);
}

/** `net.connect` whose socket reads through a pump. */
export function connectPumped(o: net.TcpNetConnectOpts, pool: ReadBufferPool): net.Socket {
  const pump = new ReadPump(pool);
  return pump.attach(net.connect({ ...o, onread: pump.onread }));
}
