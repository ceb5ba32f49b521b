/**
 * The prober suite: can an active prober tell Portcullis (a TLS `tcp`
 * listener with probe_resistance, default settings and the default guard)
 * from a plain port-forward to the site it masks as? Both paths end at the
 * same real nginx (Debian's, TLS on loopback, client_header_timeout 1 s) and
 * both carry one extra hop (the gateway, or a minimal Node pipe relay).
 * Every probe class runs BENCH_PROBE_SAMPLES (default 30) times per path from
 * one address, the two paths' samples interleaved. Per class: how often the
 * normalised bytes (TLS record types and lengths; text with Date blanked)
 * match, the close kinds, p50 time to the first byte and to the close, the
 * two-sample Kolmogorov-Smirnov statistic of both times, and the 5-fold
 * cross-validated accuracy of the best one-feature rule (first byte, close
 * time, bytes, record lengths, normalised bytes, close kind) at telling the
 * paths apart (0.50 is chance; the target is <= 0.60).
 * BENCH_PROBE_CLASS (a word of the class names) runs only the classes that
 * contain it; BENCH_PROBE_DETAIL=1 prints, per class, how often each record
 * shape and close kind came on each path.
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { seededRng } from "../../src/core/random.js";
import { startGateway, startOrigin } from "../../test/gateway/fixtures.js";
import {
  type Labelled,
  type Observation,
  type Probe,
  classifierAccuracy,
  ksStatistic,
  median,
  normalised,
  observe,
  startForwarder,
  startNginxMask,
} from "../../test/features/probe-resistance/prober.js";
import { captureClientHello, selfSigned, tlsExchange } from "../../test/features/probe-resistance/fixtures.js";

export const title = "Probe resistance: gateway vs a plain forwarder to the same nginx, per probe class";

function randomBytes(n: number, seed: number): Buffer {
  const rng = seededRng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rng.next() * 256);
  // A random first byte of 0x16 would make it a TLS record header; keep the classes what they say.
  if (b[0] === 0x16) b[0] = 0x17;
  return b;
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

interface ProbeClass {
  name: string;
  /** The probe of sample i (the same on both paths). */
  probe(i: number): Probe;
  timeoutMs: number;
}

async function classes(): Promise<ProbeClass[]> {
  const [maskSni, unknownSni, noSni] = await Promise.all([captureClientHello("www.example.test"), captureClientHello("unknown.example.test"), captureClientHello(undefined)]);
  const once = (name: string, send: Buffer[], fin = false, timeoutMs = 4_000): ProbeClass => ({ name, probe: () => ({ name, send, fin }), timeoutMs });
  const out: ProbeClass[] = [
    once("nothing, then silence", []),
    once("nothing, then FIN", [], true),
    once("half a ClientHello, then silence", [maskSni.subarray(0, Math.floor(maskSni.length / 2))]),
    once("garbage", [Buffer.from("\x00\x01\x02\x03 definitely not a request\r\n\r\n")]),
    once("HTTP GET in clear", [Buffer.from("GET / HTTP/1.1\r\nHost: www.example.test\r\nUser-Agent: probe/1.0\r\n\r\n")]),
    once("CONNECT, no credentials", [Buffer.from("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")]),
    once("CONNECT, wrong credentials", [Buffer.from(`CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: ${basic("alice", "wrong")}\r\n\r\n`)]),
    once("ClientHello, mask SNI", [maskSni]),
    once("ClientHello, unknown SNI", [unknownSni]),
    once("ClientHello, no SNI", [noSni]),
  ];
  for (const [lo, hi] of [
    [1, 16],
    [17, 32],
    [33, 48],
    [49, 64],
  ] as const) {
    const name = `random ${lo}-${hi} bytes`;
    out.push({ name, probe: (i) => ({ name, send: [randomBytes(lo + (i % (hi - lo + 1)), 1000 + i)] }), timeoutMs: 4_000 });
  }
  for (const n of [100, 1_000, 5_000, 65_536]) {
    const name = `random ${n} bytes`;
    out.push({ name, probe: (i) => ({ name, send: [randomBytes(n, 2000 + i)] }), timeoutMs: 4_000 });
  }
  return out;
}

/** How often each (close kind, normalised bytes) came, most frequent first. */
function tally(os: Observation[]): string {
  const n = new Map<string, number>();
  for (const o of os) {
    const k = `${o.closeKind} [${normalised(o.bytes).slice(0, 40).replace(/\r?\n/g, "⏎")}]`;
    n.set(k, (n.get(k) ?? 0) + 1);
  }
  return [...n].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v}× ${k}`).join("; ");
}

const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : "-");

export async function run(): Promise<void> {
  const samples = Number(process.env.BENCH_PROBE_SAMPLES ?? 30);
  const [maskCert, gwCert] = await Promise.all([selfSigned("www.example.test"), selfSigned("gw.example.test")]);
  const nginx = await startNginxMask(maskCert, { headerTimeout: "1s" });
  const forwarder = await startForwarder(nginx.port);
  const origin = await startOrigin();
  const dir = await mkdtemp(join(tmpdir(), "portcullis-prober-"));
  await writeFile(join(dir, "cert.pem"), gwCert.cert);
  await writeFile(join(dir, "key.pem"), gwCert.key);
  const gw = await startGateway({
    log: { format: "json" },
    listener: [
      {
        name: "tls-in",
        kind: "tcp",
        bind: "127.0.0.1:0",
        upstream: `127.0.0.1:${origin.port}`,
        tls: { cert: join(dir, "cert.pem"), key: join(dir, "key.pem"), handshake_timeout: "3s" },
        server_names: ["gw.example.test"],
        probe_resistance: { mask: `127.0.0.1:${nginx.port}` },
      },
    ],
  });
  try {
    console.log(`${samples} samples per class and path, interleaved, one source address (127.0.0.1) for every probe; default guard (10 failures ban).`);
    console.log("| probe class | bytes match | close gw / fwd | first byte p50 ms gw / fwd | close p50 ms gw / fwd | KS first byte | KS close | classifier accuracy |");
    console.log("|---|---|---|---|---|---|---|---|");
    let worst = 0;
    const only = process.env.BENCH_PROBE_CLASS;
    const detail: string[] = [];
    for (const c of (await classes()).filter((k) => only === undefined || k.name.includes(only))) {
      const gwObs: Observation[] = [];
      const fwdObs: Observation[] = [];
      for (let i = 0; i < samples; i++) {
        const p = c.probe(i);
        // Both paths at once, alternating which starts first, so the machine's load falls on both alike.
        const [a, b] = i % 2 === 0 ? await Promise.all([observe(gw.port, p, c.timeoutMs), observe(forwarder.port, p, c.timeoutMs)]) : (await Promise.all([observe(forwarder.port, p, c.timeoutMs), observe(gw.port, p, c.timeoutMs)])).reverse();
        gwObs.push(a!);
        fwdObs.push(b!);
      }
      const match = gwObs.filter((o, i) => normalised(o.bytes) === normalised(fwdObs[i]!.bytes)).length / samples;
      const kinds = (os: Observation[]) => [...new Set(os.map((o) => o.closeKind))].join("+");
      const first = (os: Observation[]) => os.map((o) => o.firstByteMs ?? -1);
      const close = (os: Observation[]) => os.map((o) => o.closeMs);
      const labelled: Labelled[] = [];
      for (let i = 0; i < samples; i++) labelled.push({ features: gwObs[i]!, gateway: true }, { features: fwdObs[i]!, gateway: false });
      const acc = classifierAccuracy(labelled);
      if (process.env.BENCH_PROBE_DETAIL === "1") detail.push(`${c.name}:\n  gateway: ${tally(gwObs)}\n  forwarder: ${tally(fwdObs)}`);
      worst = Math.max(worst, acc);
      const p50 = (os: Observation[]) => median(os.filter((o) => o.firstByteMs !== undefined).map((o) => o.firstByteMs!));
      console.log(
        `| ${c.name} | ${(match * 100).toFixed(0)}% | ${kinds(gwObs)} / ${kinds(fwdObs)} | ${ms(p50(gwObs))} / ${ms(p50(fwdObs))} | ${ms(median(close(gwObs)))} / ${ms(median(close(fwdObs)))} | ${ksStatistic(first(gwObs), first(fwdObs)).toFixed(2)} | ${ksStatistic(close(gwObs), close(fwdObs)).toFixed(2)} | ${acc.toFixed(2)} |`,
      );
    }
    if (detail.length > 0) console.log(`\n${detail.join("\n")}`);
    const served = await tlsExchange(gw.port, "gw.example.test", Buffer.from("GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"), 5_000, "127.0.0.2");
    const banned = await gw.gateway.penaltyBox.status(gw.gateway.keyOf("127.0.0.1"));
    console.log(`\nworst classifier accuracy: ${worst.toFixed(2)} (target <= 0.60); the probing address was banned ${banned.bans} time(s) meanwhile`);
    console.log(`authenticated client (served name, another address) still tunnels: ${/hello from origin/.test(served.bytes.toString()) ? "yes" : `NO (${served.error ?? served.bytes.length})`}`);
  } finally {
    await gw.stop();
    await forwarder.stop();
    await nginx.stop();
    await origin.close();
  }
}
