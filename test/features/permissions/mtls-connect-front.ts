import { connect as netConnect, type Socket } from "node:net";
import { createServer, type TLSSocket, type Server } from "node:tls";
import type { PgPermissionPolicy } from "../../../src/features/permissions/pg-policy.js";

/**
 * The smallest mTLS CONNECT proxy that puts the permission policy in the
 * path: client certificate required, identity = SAN URI (else CN), one
 * CONNECT request, policy.decide, then a tunnel to the resolved address.
 * Tunnels are indexed by the row that admitted them so a revocation can
 * close them.
 */
export interface MtlsFrontOptions {
  readonly policy: PgPermissionPolicy;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  /** Test DNS: host name to address. */
  readonly hosts: Record<string, string>;
  readonly revokeClosesTunnels: boolean;
}

export interface MtlsFront {
  readonly port: number;
  readonly decisions: { identity: string; allowed: boolean; reason: string }[];
  readonly openTunnels: () => number;
  close(): Promise<void>;
}

const MAX_HEAD = 8192;
const HEAD_TIMEOUT_MS = 5000;

function identityOf(sock: TLSSocket): string | undefined {
  const cert = sock.getPeerCertificate();
  const uri = cert.subjectaltname?.split(", ").find((s) => s.startsWith("URI:"));
  if (uri) return uri.slice(4);
  const cn = cert.subject?.CN;
  return typeof cn === "string" ? cn : undefined;
}

export async function startMtlsFront(o: MtlsFrontOptions): Promise<MtlsFront> {
  const byRow = new Map<string, Set<Socket>>();
  const all = new Set<Socket>();
  const decisions: MtlsFront["decisions"] = [];
  const unsubscribe = o.policy.onRevoke((_identity, rowId) => {
    if (!o.revokeClosesTunnels) return;
    for (const s of byRow.get(rowId) ?? []) s.destroy();
    byRow.delete(rowId);
  });

  const server: Server = createServer({ cert: o.cert, key: o.key, ca: o.ca, requestCert: true, rejectUnauthorized: true }, (client) => {
    all.add(client);
    client.on("close", () => all.delete(client));
    client.on("error", () => client.destroy());
    const timer = setTimeout(() => client.destroy(), HEAD_TIMEOUT_MS);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > MAX_HEAD) client.destroy();
        return;
      }
      client.off("data", onData);
      clearTimeout(timer);
      void handle(client, head.subarray(0, end).toString("latin1"), head.subarray(end + 4));
    };
    client.on("data", onData);
  });

  async function handle(client: TLSSocket, head: string, rest: Buffer): Promise<void> {
    const m = /^CONNECT ([^\s:]+|\[[^\]]+\]):(\d{1,5}) HTTP\/1\.[01]\r?$/m.exec(head.split("\n")[0] ?? "");
    const identity = identityOf(client);
    if (!m || identity === undefined) {
      client.end("HTTP/1.1 400 Bad Request\r\n\r\n");
      return;
    }
    const host = m[1]!;
    const port = Number(m[2]);
    const address = o.hosts[host.toLowerCase()];
    const d = await o.policy.decide(identity, host, port, address);
    decisions.push({ identity, allowed: d.allowed, reason: d.reason });
    if (!d.allowed || address === undefined || client.destroyed) {
      client.end("HTTP/1.1 403 Forbidden\r\n\r\n");
      return;
    }
    const upstream = netConnect({ host: address, port });
    all.add(upstream);
    let set = byRow.get(d.rowId!);
    if (set === undefined) byRow.set(d.rowId!, (set = new Set()));
    set.add(client);
    const cleanup = () => {
      set.delete(client);
      all.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    upstream.on("error", cleanup);
    upstream.on("close", cleanup);
    client.on("close", cleanup);
    upstream.on("connect", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (rest.length) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : 0,
    decisions,
    openTunnels: () => [...byRow.values()].reduce((n, s) => n + s.size, 0),
    async close() {
      unsubscribe();
      for (const s of all) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
