/**
 * The connection to the mask host, dialled before the gateway knows whether
 * the client is one of its own. A connection that cannot be classified
 * within a short window (a silent prober, half a ClientHello, a CONNECT head
 * still arriving) gets its mask connection then, so the mask host's own
 * timeouts start at about the moment the prober connected: when the mask
 * host gives up (nginx closes a silent connection after its
 * client_header_timeout) or speaks first, the gateway stops waiting and
 * relays that to the prober at once. Until handed over, whatever the mask
 * host sends is kept (bounded) and its close is remembered.
 */
import net from "node:net";

/** Where the mask host listens. */
export interface MaskTarget {
  host: string;
  port: number;
}

/** What the mask connection did before it was handed to the relay. */
export interface EarlyMaskState {
  socket: net.Socket;
  /** Bytes the mask host sent before the hand-over, in order. */
  pending: Buffer[];
  connected: boolean;
  /** The mask host finished sending (FIN) before the hand-over. */
  ended: boolean;
  /** Refused, failed or closed before the hand-over: the relay treats it as unreachable or finished. */
  failed: boolean;
}

/** Bytes kept from a mask host that speaks before the hand-over; past this the socket is paused. */
const MAX_PENDING = 64 * 1024;

export class EarlyMask {
  private readonly state: EarlyMaskState;
  private notify: (() => void) | undefined;
  private pendingBytes = 0;
  private handedOver = false;

  constructor(mask: MaskTarget, localAddress?: string) {
    const socket = net.connect({ host: mask.host, port: mask.port, localAddress, allowHalfOpen: true });
    this.state = { socket, pending: [], connected: false, ended: false, failed: false };
    socket.once("connect", () => (this.state.connected = true));
    socket.on("data", this.onData);
    socket.once("end", this.onEnd);
    socket.on("error", this.onError);
    socket.once("close", this.onError);
  }

  /** Called once, the first time the mask host sends, finishes or fails before the hand-over. */
  onActivity(fn: () => void): void {
    this.notify = fn;
    if (this.state.pending.length > 0 || this.state.ended || this.state.failed) queueMicrotask(fn);
  }

  /** Whether the mask host already sent, finished or failed. */
  get active(): boolean {
    return this.state.pending.length > 0 || this.state.ended || this.state.failed;
  }

  /** Gives the socket and what it did so far to the relay; the socket is paused and carries no listener of ours. */
  handOver(): EarlyMaskState {
    this.handedOver = true;
    const s = this.state.socket;
    s.pause();
    s.removeListener("data", this.onData);
    s.removeListener("end", this.onEnd);
    s.removeListener("error", this.onError);
    s.removeListener("close", this.onError);
    return this.state;
  }

  /** The client turned out to be served: the mask host sees a connection that closes without a byte. */
  discard(): void {
    if (!this.handedOver) this.handOver();
    this.state.socket.on("error", () => {});
    this.state.socket.destroy();
  }

  private readonly onData = (chunk: Buffer): void => {
    this.state.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= MAX_PENDING) this.state.socket.pause();
    this.fire();
  };

  private readonly onEnd = (): void => {
    this.state.ended = true;
    this.fire();
  };

  private readonly onError = (): void => {
    this.state.failed = true;
    this.fire();
  };

  private fire(): void {
    const fn = this.notify;
    this.notify = undefined;
    fn?.();
  }
}
