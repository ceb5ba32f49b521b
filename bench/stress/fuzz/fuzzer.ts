/**
 * The seeded mutation fuzzer: mutated CONNECT heads, TLS ClientHellos, HTTP
 * requests and UDP datagrams sent to a real `portcullis run` process
 * (bench/stress/fuzz/target.ts), each TCP input on its own connection from its
 * own loopback address (127.200.0.0/16). What must hold, per input and for the
 * whole run (anything else is a finding):
 *
 *  - the gateway process is alive at the end and wrote no stack trace;
 *  - no reply carries a stack trace or the product's name; a connect or TLS
 *    client without valid credentials sees only the mask site's bytes (or a
 *    TLS record from the gateway's handshake), never a 407;
 *  - every TCP connection is closed by the gateway within `closeBoundMs`,
 *    whether the client half-closed after its input or kept the socket open;
 *  - a legitimate client of every protocol is served every `legitEvery`
 *    inputs and at the end.
 *
 * Bounded in count (`perProtocol`) and in time (`timeBudgetMs`).
 */
import dgram from "node:dgram";
import { once } from "node:events";
import net from "node:net";
import { seededRng } from "../../../src/core/random.js";
import { connectSeeds, httpSeeds, PROTOCOLS, tlsSeeds, udpSeeds, type Protocol } from "./corpus.js";
import { mutate, pick, type Mutation, type Seed } from "./mutate.js";
import { MASK_REPLY, PASSWORD, SERVED_NAME, USER, type Target } from "./target.js";

export interface FuzzOptions {
  seed: number;
  perProtocol: number;
  timeBudgetMs: number;
  concurrency?: number;
  closeBoundMs?: number;
  legitEvery?: number;
  protocols?: readonly Protocol[];
  /** Called every 100 inputs. */
  progress?(line: string): void;
}

export interface Finding {
  protocol: Protocol;
  index: number;
  input: string;
  problem: string;
}

export interface FuzzReport {
  sent: Record<Protocol, number>;
  findings: Finding[];
  /** Longest time from the end of a TCP input to the gateway's close. */
  maxCloseMs: number;
  legitChecks: number;
  legitFailures: number;
  crashed: boolean;
  elapsedMs: number;
}

const STACK = /\n\s+at \S|\bat [\w.<>$]+ \((?:file|node):|node:internal|\.[cm]?[jt]s:\d+:\d+/;
const NAME = /portcullis/i;
const MAX_KEEP = 64 * 1024;

/** What is wrong with `reply` to an input of `protocol` (undefined: nothing). `authenticated`: the input kept valid credentials. */
export function replyProblem(protocol: Protocol, reply: Buffer, authenticated: boolean): string | undefined {
  const text = reply.toString("latin1");
  if (STACK.test(text)) return "a stack trace in the reply";
  if (NAME.test(text)) return "the product's name in the reply";
  const maskPrefix = reply.length === 0 || MASK_REPLY.startsWith(text) || text.startsWith(MASK_REPLY);
  if (protocol === "connect") {
    if (/^HTTP\/1\.[01] 407|Proxy-Authenticate/i.test(text)) return "a 407 / Proxy-Authenticate: the proxy gives itself away";
    if (!authenticated && !maskPrefix) return `a reply other than the mask site's to an unauthenticated client: ${JSON.stringify(text.slice(0, 80))}`;
    if (authenticated && !maskPrefix && !/^HTTP\/1\.1 \d{3} /.test(text)) return `an unparseable reply to an authenticated client: ${JSON.stringify(text.slice(0, 80))}`;
  }
  if (protocol === "tls" && !maskPrefix && reply[0] !== 0x16 && reply[0] !== 0x15) {
    return `neither the mask site's bytes nor a TLS record: ${JSON.stringify(text.slice(0, 80))}`;
  }
  if (protocol === "http" && reply.length > 0 && !/^HTTP\/1\.[01] \d{3} /.test(text)) return `a reply that is not HTTP: ${JSON.stringify(text.slice(0, 80))}`;
  return undefined;
}

interface Job {
  protocol: Protocol;
  index: number;
  seed: Seed;
  kind: Mutation;
  bytes: Buffer;
  keepOpen: boolean;
  from: string;
}

export async function runFuzz(target: Target, o: FuzzOptions): Promise<FuzzReport> {
  const started = Date.now();
  const deadline = started + o.timeBudgetMs;
  const concurrency = o.concurrency ?? 32;
  const closeBoundMs = o.closeBoundMs ?? 8000;
  const legitEvery = o.legitEvery ?? 100;
  const protocols = o.protocols ?? PROTOCOLS;
  const rng = seededRng(o.seed);
  const seeds: Record<Protocol, Seed[]> = {
    connect: connectSeeds(USER, PASSWORD, target.echoPort),
    tls: await tlsSeeds(SERVED_NAME),
    http: httpSeeds(),
    udp: udpSeeds(),
  };
  const goodAuth = Buffer.from(`${USER}:${PASSWORD}`).toString("base64");
  const report: FuzzReport = { sent: { connect: 0, tls: 0, http: 0, udp: 0 }, findings: [], maxCloseMs: 0, legitChecks: 0, legitFailures: 0, crashed: false, elapsedMs: 0 };
  const finding = (j: Job, problem: string): void => {
    if (report.findings.length < 1000) report.findings.push({ protocol: j.protocol, index: j.index, input: `${j.seed.name} / ${j.kind}${j.keepOpen ? " / kept open" : ""} (${j.bytes.length} B)`, problem });
  };

  // The inputs, interleaved across protocols, drawn up front so the sequence depends on the seed alone.
  const jobs: Job[] = [];
  for (let i = 0; i < o.perProtocol; i++) {
    for (const protocol of protocols) {
      const list = seeds[protocol];
      const seed = pick(rng, list);
      const m = mutate(rng, seed, pick(rng, list));
      const n = jobs.length;
      jobs.push({ protocol, index: i, seed, kind: m.kind, bytes: m.bytes, keepOpen: rng.next() < 0.15, from: `127.200.${(n >> 8) & 255}.${(n & 255) || 1}` });
    }
  }

  const udpSockets = await udpClients(8);
  const legit = async (): Promise<void> => {
    report.legitChecks++;
    const failed = await target.legit();
    if (failed.length > 0) {
      report.legitFailures++;
      report.findings.push({ protocol: failed[0] as Protocol, index: -1, input: "legitimate client", problem: `not served: ${failed.join(", ")}` });
    }
  };

  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length && Date.now() < deadline && target.gw.exited() === undefined) {
      const j = jobs[next++]!;
      report.sent[j.protocol]++;
      if (j.protocol === "udp") {
        const s = udpSockets[j.index % udpSockets.length]!;
        s.send(j.bytes.subarray(0, 65_000), target.gw.ports.dns!, "127.0.0.1");
      } else {
        const port = { connect: target.gw.ports.egress, tls: target.gw.ports.front, http: target.gw.ports.api }[j.protocol]!;
        const r = await tcpInput(port, j, closeBoundMs);
        report.maxCloseMs = Math.max(report.maxCloseMs, r.closeMs);
        if (!r.closed) finding(j, `not closed by the gateway within ${closeBoundMs} ms`);
        const authenticated = j.protocol === "connect" && j.bytes.includes(goodAuth);
        const problem = replyProblem(j.protocol, r.reply, authenticated);
        if (problem !== undefined) finding(j, problem);
      }
      if (++done % legitEvery === 0) await legit();
      if (done % 100 === 0) o.progress?.(`fuzz: ${done}/${jobs.length} inputs, ${report.findings.length} findings`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  // UDP replies are echoes of what was sent; they must not carry anything of the gateway's own.
  for (const s of udpSockets) {
    const problem = replyProblem("udp", Buffer.concat(s.replies), false);
    if (problem !== undefined) report.findings.push({ protocol: "udp", index: -1, input: "udp replies", problem });
    s.close();
  }
  await legit();
  const exit = target.gw.exited();
  report.crashed = exit !== undefined;
  if (report.crashed) report.findings.push({ protocol: "connect", index: -1, input: "gateway process", problem: `exited: ${exit}` });
  if (STACK.test(target.gw.output())) report.findings.push({ protocol: "connect", index: -1, input: "gateway output", problem: "a stack trace in the gateway's output" });
  report.elapsedMs = Date.now() - started;
  return report;
}

/** Sends one input on a new connection from `j.from`; waits (bounded) for the gateway to close it. */
function tcpInput(port: number, j: Job, boundMs: number): Promise<{ reply: Buffer; closed: boolean; closeMs: number }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let sentAt = Date.now();
    const s = net.connect({ port, host: "127.0.0.1", localAddress: j.from });
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ reply: Buffer.concat(chunks), closed, closeMs: Date.now() - sentAt });
    };
    const timer = setTimeout(() => finish(false), boundMs + 5000);
    s.on("error", () => {
      // A reset is a close.
    });
    s.on("data", (d: Buffer) => {
      if (kept < MAX_KEEP) chunks.push(d);
      kept += d.length;
    });
    s.on("close", () => finish(Date.now() - sentAt <= boundMs));
    s.once("connect", () => {
      s.write(j.bytes, () => {
        sentAt = Date.now();
        if (!j.keepOpen) s.end();
      });
    });
  });
}

interface UdpClient {
  replies: Buffer[];
  send(b: Buffer, port: number, host: string): void;
  close(): void;
}

async function udpClients(n: number): Promise<UdpClient[]> {
  const out: UdpClient[] = [];
  for (let i = 0; i < n; i++) {
    const s = dgram.createSocket("udp4");
    const replies: Buffer[] = [];
    let kept = 0;
    s.on("message", (m) => {
      if (kept < MAX_KEEP) replies.push(m);
      kept += m.length;
    });
    s.on("error", () => {});
    s.bind(0, `127.200.255.${10 + i}`);
    await once(s, "listening");
    out.push({ replies, send: (b, port, host) => s.send(b, port, host), close: () => s.close() });
  }
  return out;
}

