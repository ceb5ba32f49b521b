/**
 * TCP ports nothing listens on now, for configurations that must name their
 * port before the process starts (the process binds it a moment later).
 *
 * They are taken from below the kernel's ephemeral range
 * (net.ipv4.ip_local_port_range, 32768–60999 by default). A port bound on 0
 * and closed again comes from that range, and while other test files open
 * thousands of client connections, the kernel can hand the very same port to
 * one of them as its source port before our process binds it: the gateway
 * then fails to start, now and then, on a busy machine. Ports below the range
 * are never given to outgoing connections.
 */
import { readFileSync } from "node:fs";
import net from "node:net";

/** The lowest port the kernel hands to outgoing connections (32768 where /proc does not say). */
function ephemeralStart(): number {
  try {
    const start = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > 0 ? start : 32_768;
  } catch {
    return 32_768;
  }
}

const LOWEST = 10_000;
const TRIES = 200;
/** Ports this process handed out: two calls never return the same one. */
const given = new Set<number>();

/** Binds `port` on `host` and releases it: true when it was free. */
function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** Any free port, the kernel's choice (in its ephemeral range): for when the low range is full or absent. */
function kernelPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  const top = ephemeralStart() - 1;
  if (top > LOWEST) {
    for (let i = 0; i < TRIES; i++) {
      const port = LOWEST + Math.floor(Math.random() * (top - LOWEST + 1));
      if (given.has(port)) continue;
      if (await bindable(port, host)) {
        given.add(port);
        return port;
      }
    }
  }
  return kernelPort(host);
}

/** `n` distinct free ports. */
export async function freePorts(n: number, host = "127.0.0.1"): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await freePort(host));
  return ports;
}
