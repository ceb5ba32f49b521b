/**
 * Name resolution while password checks keep libuv's thread pool busy:
 * `dns.lookup` (getaddrinfo, runs on the pool) against `dns.Resolver`
 * (c-ares, no pool), with 0, 3 and 4 scrypt runs kept in flight at the
 * default cost (the pool has 4 threads; the verifier's default cap is 3).
 * Both resolve a name a local UDP DNS stub answers (the resolver asks the
 * stub; lookup finds the name through /etc/hosts, "localhost"), so neither
 * waits for a real network. Prints the median and p95 of each.
 */
import dgram from "node:dgram";
import dns from "node:dns";
import { DEFAULT_SCRYPT, hashPassword, verifyPassword } from "../../src/gateway/identity/passwords.js";

export const title = "DNS under a password-check flood: dns.lookup (thread pool) vs dns.Resolver (c-ares)";

const SAMPLES = Number(process.env.BENCH_DNS_SAMPLES ?? 20);

/** Answers every A query with 127.0.0.1 (a minimal DNS responder for the resolver to ask). */
async function dnsStub(): Promise<{ port: number; close(): void }> {
  const sock = dgram.createSocket("udp4");
  sock.on("message", (q, rinfo) => {
    if (q.length < 12) return;
    let i = 12;
    while (i < q.length && q[i] !== 0) i += q[i]! + 1;
    const question = q.subarray(12, i + 5);
    const header = Buffer.from(q.subarray(0, 12));
    header.writeUInt16BE(0x8180, 2); // response, recursion desired + available, no error
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(1, 6);
    header.writeUInt32BE(0, 8);
    const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    sock.send(Buffer.concat([header, question, answer]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  return { port: sock.address().port, close: () => sock.close() };
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

async function timed(fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  return out;
}

export async function run(): Promise<void> {
  const stub = await dnsStub();
  const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([`127.0.0.1:${stub.port}`]);
  const hash = await hashPassword("x", DEFAULT_SCRYPT);
  console.log("| scrypt runs in flight | lookup p50 ms | lookup p95 ms | resolver p50 ms | resolver p95 ms |");
  console.log("|---|---|---|---|---|");
  try {
    for (const inFlight of [0, 3, 4]) {
      let stop = false;
      const loops = Array.from({ length: inFlight }, async () => {
        while (!stop) await verifyPassword("wrong", hash);
      });
      await new Promise((r) => setTimeout(r, 300));
      const lookup = await timed(() => dns.promises.lookup("localhost", { all: true }));
      const cares = await timed(() => resolver.resolve4("flood.test"));
      stop = true;
      await Promise.all(loops);
      const f = (x: number): string => x.toFixed(1);
      console.log(`| ${inFlight} | ${f(quantile(lookup, 0.5))} | ${f(quantile(lookup, 0.95))} | ${f(quantile(cares, 0.5))} | ${f(quantile(cares, 0.95))} |`);
    }
  } finally {
    stub.close();
  }
}
