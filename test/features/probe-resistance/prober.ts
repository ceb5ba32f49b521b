/**
 * An active prober, as a censor runs one, for the tests and `npm run bench
 * -- probe`. It asks the censor's question: is this port a proxy, or a plain
 * port-forward to the site it shows? So it probes two paths that carry the
 * same extra hop:
 *
 *   gateway path:  prober -> Portcullis (TLS tcp listener, probe_resistance) -> nginx
 *   mask path:     prober -> plain TCP forwarder (a Node pipe relay)       -> nginx
 *
 * nginx is a real one from Debian (TLS on loopback, a throw-away config and a
 * self-signed certificate, a short client_header_timeout so silent probes
 * end quickly). Each probe records the bytes (TLS randoms and Date
 * normalised), the TLS record types and lengths, the close kind (FIN or RST)
 * and the time to the first byte and to the close.
 */
import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type SelfSigned, closedPort } from "./fixtures.js";
import { sleep } from "../../helpers/wait.js";

export interface Stoppable {
  port: number;
  stop(): Promise<void>;
}

/** A real nginx serving a small page over TLS, with its silent-connection timeout set (client_header_timeout). */
export async function startNginxMask(cert: SelfSigned, o: { headerTimeout?: string } = {}): Promise<Stoppable> {
  const dir = await mkdtemp(join(tmpdir(), "portcullis-nginx-mask-"));
  const port = await closedPort();
  await writeFile(join(dir, "cert.pem"), cert.cert);
  await writeFile(join(dir, "key.pem"), cert.key);
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `${t}_temp_path ${dir}/${t};`).join(" ");
  await writeFile(
    join(dir, "nginx.conf"),
    `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log crit;
events { worker_connections 256; }
http {
  access_log off; ${temp}
  client_header_timeout ${o.headerTimeout ?? "1s"};
  keepalive_timeout 1s;
  server_tokens off;
  server {
    listen 127.0.0.1:${port} ssl default_server;
    ssl_certificate ${dir}/cert.pem; ssl_certificate_key ${dir}/key.pem;
    location / { default_type text/html; return 200 "<html><body>welcome</body></html>"; }
  }
}
`,
  );
  const child = spawn("nginx", ["-c", join(dir, "nginx.conf"), "-p", dir], { stdio: "ignore" });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const stop = async (): Promise<void> => {
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3_000))]);
  };
  const end = performance.now() + 5_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) break;
    if (performance.now() > end || child.exitCode !== null) {
      await stop();
      throw new Error("nginx did not start (is the nginx package installed?)");
    }
    await sleep(20);
  }
  return { port, stop };
}

/**
 * A plain TCP port-forward: bytes both ways as they come, a FIN passed on as
 * a FIN, a reset as a reset. The mask path's extra hop, so both paths carry one.
 */
export async function startForwarder(targetPort: number): Promise<Stoppable> {
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    const up = net.connect({ port: targetPort, host: "127.0.0.1", allowHalfOpen: true, noDelay: true });
    open.add(client);
    open.add(up);
    const wire = (a: net.Socket, b: net.Socket): void => {
      a.on("data", (c: Buffer) => {
        if (!b.write(c)) {
          a.pause();
          b.once("drain", () => a.resume());
        }
      });
      a.on("end", () => b.end());
      a.on("error", () => b.resetAndDestroy());
      a.on("close", () => {
        open.delete(a);
        if (!b.writableEnded) b.destroy();
        else if (a.readableEnded && b.readableEnded) b.destroy();
      });
    };
    wire(client, up);
    wire(up, client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}

export type CloseKind = "fin" | "rst" | "timeout";

export interface Observation {
  bytes: Buffer;
  /** ms from connect to the first byte received (undefined: none). */
  firstByteMs: number | undefined;
  /** ms from connect to the close (FIN or RST) seen by the prober. */
  closeMs: number;
  closeKind: CloseKind;
}

export interface Probe {
  name: string;
  /** What to send, in order; each after `gapMs` (default 0). */
  send: Buffer[];
  gapMs?: number;
  /** Half-close after sending (default false: a prober waits to see what the server does). */
  fin?: boolean;
}

/** Sends a probe and watches what comes back, until the peer closes or `timeoutMs`. */
export function observe(port: number, p: Probe, timeoutMs = 10_000, localAddress?: string): Promise<Observation> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let first: number | undefined;
    let started = 0;
    let settled = false;
    const sock = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true, localAddress, noDelay: true });
    const done = (kind: CloseKind) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const closeMs = performance.now() - started;
      sock.destroy();
      resolve({ bytes: Buffer.concat(chunks), firstByteMs: first, closeMs, closeKind: kind });
    };
    const timer = setTimeout(() => done("timeout"), timeoutMs);
    sock.on("connect", () => {
      started = performance.now();
      void (async () => {
        for (const b of p.send) {
          if ((p.gapMs ?? 0) > 0) await sleep(p.gapMs ?? 0);
          if (sock.destroyed || settled) return;
          if (b.length > 0) sock.write(b);
        }
        if (p.fin === true && !sock.destroyed) sock.end();
      })();
    });
    sock.on("data", (c: Buffer) => {
      first ??= performance.now() - started;
      chunks.push(c);
    });
    sock.on("end", () => done("fin"));
    sock.on("error", () => done("rst"));
    sock.on("close", () => done("fin"));
  });
}

/** TLS record headers of a byte stream: "type:length" per record, then "+N" for trailing bytes that are no record. */
export function tlsRecords(b: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  while (i + 5 <= b.length && b[i]! >= 20 && b[i]! <= 23 && b[i + 1] === 3) {
    const len = b.readUInt16BE(i + 3);
    out.push(`${b[i]}:${len}`);
    i += 5 + len;
  }
  if (i < b.length) out.push(`+${b.length - Math.min(i, b.length)}`);
  return out;
}

/** What of the bytes must match across paths: TLS record shapes, or the text with its Date line blanked. */
export function normalised(b: Buffer): string {
  if (b.length >= 5 && b[0]! >= 20 && b[0]! <= 23 && b[1] === 3) return tlsRecords(b).join(" ");
  return b.toString("latin1").replace(/^Date: .*$/gm, "Date: -");
}

/** Two-sample Kolmogorov-Smirnov statistic (max distance between the empirical CDFs). */
export function ksStatistic(a: readonly number[], b: readonly number[]): number {
  const xs = [...a].sort((x, y) => x - y);
  const ys = [...b].sort((x, y) => x - y);
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < xs.length && j < ys.length) {
    const v = Math.min(xs[i]!, ys[j]!);
    while (i < xs.length && xs[i]! <= v) i++;
    while (j < ys.length && ys[j]! <= v) j++;
    d = Math.max(d, Math.abs(i / xs.length - j / ys.length));
  }
  return d;
}

export interface Labelled {
  features: Observation;
  gateway: boolean;
}

type Feature = (o: Observation) => number | string;

const FEATURES: Feature[] = [
  (o) => o.firstByteMs ?? -1,
  (o) => o.closeMs,
  (o) => o.bytes.length,
  (o) => tlsRecords(o.bytes).join(" "),
  (o) => normalised(o.bytes),
  (o) => o.closeKind,
];

/** A one-feature rule learnt from `train`: a threshold for numbers, a majority label per value for categories. */
function learn(train: Labelled[], f: Feature): { acc: number; predict: (o: Observation) => boolean } {
  const values = train.map((s) => f(s.features));
  if (typeof values[0] === "number") {
    const sorted = [...new Set(values as number[])].sort((a, b) => a - b);
    let best = { acc: 0, predict: (_o: Observation) => false };
    for (let k = 0; k <= sorted.length; k++) {
      const t = k === 0 ? -Infinity : k === sorted.length ? Infinity : (sorted[k - 1]! + sorted[k]!) / 2;
      for (const above of [true, false]) {
        const predict = (o: Observation) => (f(o) as number) > t === above;
        const acc = train.filter((s) => predict(s.features) === s.gateway).length / train.length;
        if (acc > best.acc) best = { acc, predict };
      }
    }
    return best;
  }
  const votes = new Map<string, number>();
  for (const s of train) votes.set(f(s.features) as string, (votes.get(f(s.features) as string) ?? 0) + (s.gateway ? 1 : -1));
  const predict = (o: Observation) => (votes.get(f(o) as string) ?? 0) > 0;
  return { acc: train.filter((s) => predict(s.features) === s.gateway).length / train.length, predict };
}

/**
 * Cross-validated accuracy (k folds, interleaved) of the best one-feature rule
 * at telling the gateway path from the mask path: 0.5 is chance.
 */
export function classifierAccuracy(samples: Labelled[], folds = 5): number {
  let right = 0;
  for (let k = 0; k < folds; k++) {
    const test = samples.filter((_, i) => i % folds === k);
    const train = samples.filter((_, i) => i % folds !== k);
    let best = learn(train, FEATURES[0]!);
    for (const f of FEATURES.slice(1)) {
      const r = learn(train, f);
      if (r.acc > best.acc) best = r;
    }
    right += test.filter((s) => best.predict(s.features) === s.gateway).length;
  }
  return right / samples.length;
}

/** Median of a list of numbers (NaN when empty). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
