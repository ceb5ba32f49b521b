/**
 * Probe resistance must not cost authenticated clients anything: 100 MiB
 * downloads over TLS through the masked TLS listener (peek + replay into TLS)
 * with dynamic record sizing on and off, against a plain node:tls server as
 * the peer, and with inter-packet timing on (opt-in) for its price.
 * Runs interleaved; the median of BENCH_RUNS (default 5) per row.
 */
import net from "node:net";
import { Writable } from "node:stream";
import tls from "node:tls";
import { IptWriter } from "../../src/features/probe-resistance/ipt.js";
import { handleMaskedTlsConnection } from "../../src/features/probe-resistance/masked-tls-listener.js";
import { selfSigned } from "../../test/features/probe-resistance/fixtures.js";

export const title = "Probe resistance: TLS download throughput with DRS on/off and IPT vs a plain node:tls server";

const TOTAL = 100 * 1024 * 1024;
const CHUNK = 64 * 1024;

/** Writes TOTAL bytes with backpressure, then ends. */
function serve(out: Writable): void {
  const chunk = Buffer.alloc(CHUNK, 0x5a);
  let sent = 0;
  const pump = (): void => {
    while (sent < TOTAL) {
      sent += CHUNK;
      if (!out.write(chunk)) {
        out.once("drain", pump);
        return;
      }
    }
    out.end();
  };
  pump();
}

type Mode = "plain" | "drs-off" | "drs-on" | "drs-on+ipt";

async function startServer(mode: Mode, cert: { cert: string; key: string }): Promise<net.Server> {
  const secureContext = tls.createSecureContext(cert);
  const server =
    mode === "plain"
      ? tls.createServer({ cert: cert.cert, key: cert.key }, (t) => serve(t))
      : net.createServer({ allowHalfOpen: true }, (socket) => {
          void handleMaskedTlsConnection(socket, {
            names: ["gw.test"],
            secureContext,
            drs: mode !== "drs-off",
            onTerminated: (t) => {
              t.on("error", () => t.destroy());
              serve(mode === "drs-on+ipt" ? new IptWriter(t) : t);
            },
          });
        });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return server;
}

/** MiB/s from the client's secureConnect to the last byte. */
function download(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    let start = 0;
    const c = tls.connect({ port, host: "127.0.0.1", servername: "gw.test", rejectUnauthorized: false }, () => (start = performance.now()));
    c.on("data", (d: Buffer) => (got += d.length));
    c.on("end", () => {
      const ms = performance.now() - start;
      c.end();
      if (got !== TOTAL) reject(new Error(`received ${got} of ${TOTAL} bytes`));
      else resolve(TOTAL / 1024 / 1024 / (ms / 1000));
    });
    c.on("error", reject);
    setTimeout(() => reject(new Error("download timed out")), 60_000).unref();
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  const cert = await selfSigned("gw.test");
  const modes: Mode[] = ["plain", "drs-off", "drs-on", "drs-on+ipt"];
  const servers = new Map<Mode, net.Server>();
  for (const m of modes) servers.set(m, await startServer(m, cert));
  const results = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  try {
    for (const m of modes) await download((servers.get(m)!.address() as net.AddressInfo).port); // warm-up
    for (let i = 0; i < runs; i++) {
      // Rotate the order each round so no mode always runs right after another one.
      const order = modes.map((_, k) => modes[(k + i) % modes.length]!);
      for (const m of order) results.get(m)!.push(await download((servers.get(m)!.address() as net.AddressInfo).port));
    }
  } finally {
    for (const s of servers.values()) s.close();
  }
  const off = median(results.get("drs-off")!);
  const plain = median(results.get("plain")!);
  console.log(`| server (100 MiB download, median of ${runs}) | MiB/s | min - max | vs DRS off | vs plain node:tls |`);
  console.log(`|---|---|---|---|---|`);
  const label: Record<Mode, string> = {
    plain: "plain node:tls server (peer)",
    "drs-off": "masked TLS listener, DRS off",
    "drs-on": "masked TLS listener, DRS on",
    "drs-on+ipt": "masked TLS listener, DRS on + IPT",
  };
  for (const m of modes) {
    const xs = results.get(m)!;
    const v = median(xs);
    const spread = `${Math.min(...xs).toFixed(0)} - ${Math.max(...xs).toFixed(0)}`;
    console.log(`| ${label[m]} | ${v.toFixed(0)} | ${spread} | ${(v / off).toFixed(3)}x | ${(v / plain).toFixed(3)}x |`);
  }
  const on = median(results.get("drs-on")!);
  console.log("");
  console.log(`DRS on / DRS off = ${(on / off).toFixed(3)}x (target >= 0.95x)`);
}
