/**
 * The gateway the fuzzer and the soak attack: a real `portcullis run` process
 * with four listeners, and the loopback services behind them.
 *
 *   egress  connect, probe resistance on (mask: a fake website), user `fuzz`
 *   front   tcp + TLS, probe resistance, serves `served.test` (echo upstream)
 *   api     http reverse proxy in front of a small origin
 *   dns     udp relay to an echo server
 *
 * Timeouts are short so a fuzzed connection that never completes its request
 * is closed in about two seconds. `legit` runs one well-behaved exchange per
 * protocol from 127.0.0.1: what "keeps serving a legitimate client" means.
 */
import { execFile } from "node:child_process";
import dgram from "node:dgram";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { hashPassword } from "../../../src/gateway/identity/passwords.js";
import { startGatewayProcess, type GatewayProcess } from "../gateway-process.js";

export const USER = "fuzz";
export const PASSWORD = "fuzz-password-1";
export const SERVED_NAME = "served.test";
/** What the mask website answers to anything; a masked client sees exactly these bytes. */
export const MASK_REPLY = "HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 22\r\nConnection: close\r\n\r\n<html>mask-site</html>";
export const ORIGIN_BODY = "origin-ok";
export const ADMIN_TOKEN = "stress-admin-token-0123456789";

const run = promisify(execFile);

export interface Target {
  gw: GatewayProcess;
  /** Loopback port of the echo upstream that tunnels and the TLS listener lead to. */
  echoPort: number;
  /** One legitimate exchange per protocol; resolves with the protocols that failed (empty = all served). */
  legit(timeoutMs?: number): Promise<string[]>;
  /** Heap in use, from the admin listener's /metrics (nodejs_heap_size_used_bytes). */
  heapUsedBytes(): Promise<number | undefined>;
  close(): Promise<void>;
}

async function listen(server: net.Server | http.Server, port = 0): Promise<number> {
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as net.AddressInfo).port;
}

export async function startTarget(o: { scryptN?: number } = {}): Promise<Target> {
  const socks = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    socks.add(s);
    s.on("close", () => socks.delete(s));
    s.on("error", () => s.destroy());
  };
  const echo = net.createServer({ allowHalfOpen: false }, (s) => {
    track(s);
    s.pipe(s);
  });
  const mask = net.createServer((s) => {
    track(s);
    s.once("data", () => s.end(MASK_REPLY));
    s.setTimeout(5000, () => s.destroy());
  });
  const origin = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end(ORIGIN_BODY));
  });
  origin.on("connection", track);
  const udpEcho = dgram.createSocket("udp4");
  udpEcho.on("message", (m, r) => udpEcho.send(m, r.port, r.address));
  udpEcho.bind(0, "127.0.0.1");
  await once(udpEcho, "listening");
  const echoPort = await listen(echo);
  const maskPort = await listen(mask);
  const originPort = await listen(origin);

  const dir = await mkdtemp(join(tmpdir(), "portcullis-stress-pki-"));
  await run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", `/CN=${SERVED_NAME}`, "-addext", `subjectAltName=DNS:${SERVED_NAME}`], { timeout: 20_000 });
  const hash = await hashPassword(PASSWORD, { N: o.scryptN ?? 1024, r: 8, p: 1 });
  const toml = `
[log]
format = "json"
level = "warn"

[users]
${USER} = "${hash}"

[guard]
max_connections_per_ip = 1000
max_connections = 10000
connection_rate = { limit = 100000, window = "1s" }
ban = { failures = 1000000, window = "60s", duration = "1m" }

[admin]
enabled = true
bind = "127.0.0.1:0"
token = "${ADMIN_TOKEN}"
rate_limit = { strategy = "endpoint", limit = 1000, window = "1s", burst = 1000 }

[[policy.rule]]
identities = ["${USER}"]
hosts = ["*"]
ports = ["1-65535"]
cidrs = ["127.0.0.0/8"]

[[listener]]
name = "egress"
kind = "connect"
bind = "127.0.0.1:0"
idle_timeout = "2s"
request_timeout = "2s"
probe_resistance = { mask = "127.0.0.1:${maskPort}", delay = { floor = "0ms", ceiling = "20ms" }, total_timeout = "3s", idle_timeout = "1s" }

[[listener]]
name = "front"
kind = "tcp"
bind = "127.0.0.1:0"
upstream = "127.0.0.1:${echoPort}"
idle_timeout = "2s"
server_names = ["${SERVED_NAME}"]
tls = { cert = "${join(dir, "cert.pem")}", key = "${join(dir, "key.pem")}", handshake_timeout = "2s" }
probe_resistance = { mask = "127.0.0.1:${maskPort}", delay = { floor = "0ms", ceiling = "20ms" }, total_timeout = "3s", idle_timeout = "1s" }

[[listener]]
name = "api"
kind = "http"
bind = "127.0.0.1:0"
upstream = "http://127.0.0.1:${originPort}"
headers_timeout = "2s"
request_timeout = "3s"

[[listener]]
name = "dns"
kind = "udp"
bind = "127.0.0.1:0"
upstream = "127.0.0.1:${(udpEcho.address() as net.AddressInfo).port}"
max_flows = 10000
max_flows_per_ip = 4096
flow_idle_timeout = "2s"
`;
  let gw: GatewayProcess;
  try {
    gw = await startGatewayProcess(toml);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    echo.close();
    mask.close();
    origin.close();
    udpEcho.close();
    throw err;
  }
  const cert = await readFile(join(dir, "cert.pem"), "utf8");

  return {
    gw,
    echoPort,
    legit: (timeoutMs = 5000) => legitExchanges(gw, echoPort, cert, timeoutMs),
    async heapUsedBytes() {
      const text = await adminGet(gw.ports.admin!, "/metrics");
      const m = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})? ([0-9.e+]+)/m.exec(text ?? "");
      return m ? Number(m[1]) : undefined;
    },
    async close() {
      await gw.stop();
      for (const s of socks) s.destroy();
      echo.close();
      mask.close();
      origin.close();
      udpEcho.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function adminGet(port: number, path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(res.statusCode === 200 ? body : undefined));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
  });
}

/** Reads from `s` until `done(received)` holds; false on close, error or timeout. */
function exchange(s: net.Socket, send: Buffer | string, done: (got: string) => boolean, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let got = "";
    const finish = (ok: boolean): void => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => finish(false), timeoutMs);
    s.on("error", () => finish(false));
    s.on("close", () => finish(done(got)));
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
      if (done(got)) finish(true);
    });
    s.write(send);
  });
}

async function legitExchanges(gw: GatewayProcess, echoPort: number, cert: string, timeoutMs: number): Promise<string[]> {
  const failed: string[] = [];
  const auth = Buffer.from(`${USER}:${PASSWORD}`).toString("base64");
  const connect = async (): Promise<boolean> => {
    const s = net.connect({ port: gw.ports.egress!, host: "127.0.0.1" });
    const head = `CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1:${echoPort}\r\nProxy-Authorization: Basic ${auth}\r\n\r\nlegit-ping`;
    return exchange(s, head, (g) => g.startsWith("HTTP/1.1 200") && g.endsWith("legit-ping"), timeoutMs);
  };
  const tlsServed = async (): Promise<boolean> => {
    const s = tls.connect({ port: gw.ports.front!, host: "127.0.0.1", servername: SERVED_NAME, ca: cert });
    try {
      await Promise.race([once(s, "secureConnect"), new Promise((_, rej) => setTimeout(() => rej(new Error("handshake timeout")), timeoutMs))]);
    } catch {
      s.destroy();
      return false;
    }
    return exchange(s, "legit-tls", (g) => g === "legit-tls", timeoutMs);
  };
  const httpGet = async (): Promise<boolean> => {
    const s = net.connect({ port: gw.ports.api!, host: "127.0.0.1" });
    return exchange(s, "GET /legit HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n", (g) => g.startsWith("HTTP/1.1 200") && g.endsWith(ORIGIN_BODY), timeoutMs);
  };
  const udp = async (): Promise<boolean> => {
    const c = dgram.createSocket("udp4");
    try {
      c.bind(0, "127.0.0.1");
      await once(c, "listening");
      const got = new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), timeoutMs);
        c.on("message", (m) => {
          if (m.toString() === "legit-udp") {
            clearTimeout(t);
            resolve(true);
          }
        });
      });
      c.send("legit-udp", gw.ports.dns!, "127.0.0.1");
      return await got;
    } finally {
      c.close();
    }
  };
  const results = await Promise.all([connect(), tlsServed(), httpGet(), udp()]);
  ["connect", "tls", "http", "udp"].forEach((p, i) => {
    if (!results[i]) failed.push(p);
  });
  return failed;
}
