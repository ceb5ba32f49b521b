/**
 * Bandwidth shaping: cap accuracy of Portcullis's shaped relay against
 * nginx's stream module (proxy_download_rate) at 1, 10 and 100 MiB/s, and
 * the throughput cost of the shaper (unthrottled vs a cap far above the
 * link). Each relay runs in its own process; the upstream sends as fast as
 * it can and the rate is measured where the bytes arrive, over a window
 * that starts after the burst.
 */
import { fork, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync, existsSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { systemClock } from "../../src/core/clock.js";
import { connectFrom, Meter, sleep, startUpstream, type Upstream } from "../../test/features/bandwidth/harness.js";

export const title = "Bandwidth shaping: cap accuracy vs nginx proxy_download_rate, and shaper overhead";

const MiB = 1024 * 1024;
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 1000);
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 3000);
const NGINX_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const p = (s.address() as net.AddressInfo).port;
  s.close();
  return p;
}

interface Relay {
  port: number;
  stop(): void;
}

async function portcullis(upstreamPort: number, config: unknown): Promise<Relay> {
  const child = fork(fileURLToPath(new URL("../../test/features/bandwidth/relay-process.ts", import.meta.url)), [JSON.stringify({ upstreamPort, identity: "bench", config })], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [hello] = (await once(child, "message")) as [{ port: number }];
  return { port: hello.port, stop: () => child.disconnect() };
}

async function nginx(upstreamPort: number, rate: string | undefined): Promise<Relay> {
  const dir = mkdtempSync(join(tmpdir(), "pc-nginx-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "nginx.conf"),
    `load_module ${NGINX_MODULE};
worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 64; }
stream {
  server {
    listen 127.0.0.1:${port};
    proxy_pass 127.0.0.1:${upstreamPort};
    ${rate ? `proxy_download_rate ${rate};` : ""}
  }
}
`,
  );
  const child: ChildProcess = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: "ignore" });
  const deadline = systemClock.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), res(true)));
      s.once("error", () => res(false));
    });
    if (ok) break;
    if (systemClock.now() > deadline) throw new Error("nginx did not start");
    await sleep(50);
  }
  return {
    port,
    stop: () => {
      child.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Download rate in bytes/s through `relay`, from a greedy upstream. */
async function measureDownload(up: Upstream, relayPort: number): Promise<number> {
  const c = await connectFrom("127.0.0.2", relayPort);
  const m = new Meter();
  c.on("data", (d: Buffer) => m.record(d.length));
  const t0 = systemClock.now();
  await sleep(SETTLE_MS + WINDOW_MS + 100);
  c.destroy();
  return m.rate(t0 + SETTLE_MS, t0 + SETTLE_MS + WINDOW_MS);
}

const fmt = (bps: number): string => `${(bps / MiB).toFixed(2)} MiB/s`;

export async function run(): Promise<void> {
  const up = await startUpstream({ send: true });
  try {
    const haveNginx = existsSync(NGINX_MODULE);
    console.log(`| cap | Portcullis achieved | achieved/configured | nginx achieved | achieved/configured |`);
    console.log(`|---|---|---|---|---|`);
    for (const capMiB of [1, 10, 100]) {
      const cap = capMiB * MiB;
      // A burst of 1/16 s: comparable to nginx, which has none, and well above one timer tick.
      const p = await portcullis(up.port, { per_identity: { bytes_per_second: cap, burst: Math.max(64 * 1024, cap / 16) } });
      const pr = await measureDownload(up, p.port);
      p.stop();
      let nr = NaN;
      if (haveNginx) {
        const n = await nginx(up.port, `${capMiB}m`);
        nr = await measureDownload(up, n.port);
        n.stop();
      }
      console.log(`| ${capMiB} MiB/s | ${fmt(pr)} | ${(pr / cap).toFixed(4)} | ${haveNginx ? fmt(nr) : "n/a"} | ${haveNginx ? (nr / cap).toFixed(4) : "(apt-get install libnginx-mod-stream)"} |`);
    }
    // Overhead: the same relay with no cap, and with a cap far above what loopback carries.
    const runs = Number(process.env.BENCH_RUNS ?? 3);
    const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const series: Record<string, number[]> = { unthrottled: [], throttled: [], nginx: [] };
    for (let i = 0; i < runs; i++) {
      const u = await portcullis(up.port, {});
      series.unthrottled!.push(await measureDownload(up, u.port));
      u.stop();
      const t = await portcullis(up.port, { per_identity: { bytes_per_second: "100GiB", burst: "1GiB" } });
      series.throttled!.push(await measureDownload(up, t.port));
      t.stop();
      if (haveNginx) {
        const n = await nginx(up.port, undefined);
        series.nginx!.push(await measureDownload(up, n.port));
        n.stop();
      }
    }
    const un = median(series.unthrottled!);
    const th = median(series.throttled!);
    console.log(`\n| relay (download, median of ${runs}) | throughput | vs Portcullis unthrottled |`);
    console.log(`|---|---|---|`);
    console.log(`| Portcullis, no cap | ${fmt(un)} | 1.000 |`);
    console.log(`| Portcullis, cap 100 GiB/s (shaper on) | ${fmt(th)} | ${(th / un).toFixed(3)} (cost ${((1 - th / un) * 100).toFixed(1)}%) |`);
    if (haveNginx) console.log(`| nginx stream, no rate | ${fmt(median(series.nginx!))} | ${(median(series.nginx!) / un).toFixed(3)} |`);
  } finally {
    await up.close();
  }
}
