/**
 * Real sockets for the shaping tests: a greedy upstream server, a shaped relay
 * in front of it, and greedy clients, with rates measured where the bytes
 * arrive.
 */
import net from "node:net";
import { once } from "node:events";
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { systemClock, type Clock } from "../../../src/core/clock.js";
import { BandwidthRegistry, type BandwidthRegistryOptions } from "../../../src/features/bandwidth/bandwidth-registry.js";
import { relayShaped, type ShapedRelay } from "../../../src/features/bandwidth/relay.js";
import { sleep } from "../../helpers/wait.js";

/** The benchmarks that drive this harness pause with the same sleep. */
export { sleep } from "../../helpers/wait.js";

const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** Arrival log of one receiving socket: (time, cumulative bytes) at each chunk. */
export class Meter {
  readonly t: number[] = [];
  readonly total: number[] = [];
  bytes = 0;
  constructor(private readonly clock: Clock = systemClock) {}
  record(n: number): void {
    this.bytes += n;
    this.t.push(this.clock.now());
    this.total.push(this.bytes);
  }
  /** Bytes per second over [from, to]: between the first arrival at or after `from` and the last at or before `to`. */
  rate(from: number, to: number): number {
    const i = this.t.findIndex((x) => x >= from);
    let j = -1;
    for (let k = this.t.length - 1; k >= 0; k--) if (this.t[k]! <= to) { j = k; break; }
    if (i < 0 || j <= i) return 0;
    return ((this.total[j]! - this.total[i]!) * 1000) / (this.t[j]! - this.t[i]!);
  }
  /** Bytes that arrived in (from, to]. */
  between(from: number, to: number): number {
    let before = 0;
    let upTo = 0;
    for (let k = 0; k < this.t.length; k++) {
      if (this.t[k]! <= from) before = this.total[k]!;
      if (this.t[k]! <= to) upTo = this.total[k]!;
    }
    return upTo - before;
  }
}

/** Writes as fast as the socket takes it until `stop()`; never more than one chunk queued past the high-water mark. */
export function blast(sock: net.Socket): { stop(): void } {
  let stopped = false;
  const go = (): void => {
    while (!stopped && !sock.destroyed) {
      if (!sock.write(CHUNK)) {
        sock.once("drain", go);
        return;
      }
    }
  };
  sock.on("error", () => {});
  go();
  return { stop: () => void (stopped = true) };
}

export interface Upstream {
  server: net.Server;
  port: number;
  /** Per accepted connection, in accept order: what arrived (upload). */
  meters: Meter[];
  close(): Promise<void>;
}

/** An upstream that meters what it receives and, if `send`, writes to every connection as fast as it can. */
export async function startUpstream(o: { send: boolean }): Promise<Upstream> {
  const meters: Meter[] = [];
  const socks = new Set<net.Socket>();
  const blasts: { stop(): void }[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    socks.add(s);
    s.on("close", () => socks.delete(s));
    s.on("error", () => {});
    const m = new Meter();
    meters.push(m);
    s.on("data", (d: Buffer) => m.record(d.length));
    if (o.send) blasts.push(blast(s));
  });
  // A backlog for thousands of connections opened at once: an overflowing one drops SYNs, retried only after 1, 3, 7... s.
  server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 });
  await once(server, "listening");
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    meters,
    async close() {
      for (const b of blasts) b.stop();
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

export interface Relay {
  port: number;
  registry: BandwidthRegistry;
  relays: ShapedRelay[];
  close(): Promise<void>;
}

/** A TCP relay built from the shaped stage: identity from the client's address by `identityOf`. */
export async function startRelay(
  upstreamPort: number,
  o: Omit<BandwidthRegistryOptions, "clock"> & { identityOf?: (ip: string) => string | undefined; clock?: Clock },
): Promise<Relay> {
  const registry = new BandwidthRegistry({ clock: systemClock, ...o });
  const relays: ShapedRelay[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    socks.add(client);
    client.on("close", () => socks.delete(client));
    client.on("error", () => {});
    const ip = client.remoteAddress!;
    const up = net.connect({ port: upstreamPort, host: "127.0.0.1", allowHalfOpen: true });
    socks.add(up);
    up.on("close", () => socks.delete(up));
    up.on("error", () => client.destroy());
    up.once("connect", () => {
      const shaping = registry.open({ ip, identity: o.identityOf?.(ip) });
      const r = relayShaped(client, up, shaping);
      relays.push(r);
      r.done.finally(() => shaping.close()).catch(() => {});
    });
  });
  // A backlog for thousands of connections opened at once: an overflowing one drops SYNs, retried only after 1, 3, 7... s.
  server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 });
  await once(server, "listening");
  return {
    port: (server.address() as net.AddressInfo).port,
    registry,
    relays,
    async close() {
      for (const s of socks) s.destroy();
      server.close();
    },
  };
}

export async function connectFrom(localAddress: string, port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: "127.0.0.1", localAddress, allowHalfOpen: true });
  s.on("error", () => {});
  await once(s, "connect");
  return s;
}

export interface RelayProcess {
  port: number;
  child: ChildProcess;
  /** Sends `msg` and resolves with the reply's field `key`. */
  ask<T>(msg: unknown, key: string): Promise<T>;
  stop(): void;
}

/** The shaped relay in its own process (test/features/bandwidth/relay-process.ts), so its event loop is not the one the load and the meters run on. */
export async function startRelayProcess(opts: Record<string, unknown>): Promise<RelayProcess> {
  const child = fork(fileURLToPath(new URL("./relay-process.ts", import.meta.url)), [JSON.stringify(opts)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const hello = await Promise.race([
    once(child, "message") as Promise<[{ port: number }]>,
    sleep(20_000).then(() => {
      throw new Error("relay process did not start");
    }),
  ]);
  const ask = <T>(msg: unknown, key: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${key} from relay process`)), 10_000);
      const on = (m: Record<string, unknown>): void => {
        if (key in m) {
          clearTimeout(t);
          child.off("message", on);
          resolve(m[key] as T);
        }
      };
      child.on("message", on);
      child.send(msg as string);
    });
  return { port: hello[0].port, child, ask, stop: () => child.connected && child.disconnect() };
}
