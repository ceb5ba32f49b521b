/** The destination policy from signed permission rows in PostgreSQL. */
import type pg from "pg";
import { pgModule } from "./pg-module.js";
import { systemClock, type Clock } from "../../core/clock.js";
import { integerAtLeast, nonNegative } from "../../core/validate.js";
import { cidrAt, type Cidr } from "../../net/cidr.js";
import { DecisionCache } from "./decision-cache.js";
import { hostMatches, normalizeHost } from "./host-pattern.js";
import type { Keyring } from "./signing-keys.js";
import { NotifyListener } from "./notify-listener.js";
import { LIMITS, ROW_REJECTIONS, type PermissionRow, type RowRejection } from "./permission.js";
import { silentLogger, type PolicyLogger } from "./policy-logger.js";
import { quotedSchema, NOTIFY_CHANNEL } from "./schema-name.js";
import { checkIntegrity, timeState } from "./signature.js";
import { candidateRows, currentSignatures } from "./table.js";

/**
 * Destination permissions from signed rows in PostgreSQL.
 *
 * decide() answers "may this identity open a tunnel to host:port (resolved
 * to address)?". A cache miss runs one indexed query for the identity's rows
 * covering the port, keeps the rows whose host pattern matches, and verifies
 * each with the trusted keys; rows that fail grant nothing and are counted
 * and logged. The verified rows (not the yes/no) are cached per (identity,
 * host, port), so the CIDR and the validity window are still checked on
 * every call against the current address and wall time.
 *
 * A dedicated connection LISTENs for the table trigger's notifications and
 * drops the changed identity's cache entries at once; deletes and updates
 * are also reported to onRevoke listeners so live tunnels can be closed.
 * While that connection is down the policy is not ready and fails closed:
 * only cache entries still within their TTL answer, everything else is
 * denied until the connection is back (it reconnects by itself).
 */
export interface PgPermissionPolicyOptions {
  /** PostgreSQL URL; or give clientConfig. */
  readonly url?: string;
  readonly clientConfig?: pg.ClientConfig;
  /** Schema holding portcullis_permissions (default "public"). */
  readonly schema?: string;
  /** Public keys trusted to sign rows. */
  readonly keyring: Keyring;
  readonly clock?: Clock;
  readonly logger?: PolicyLogger;
  /** Put destinations in log fields (default false). */
  readonly auditDestinations?: boolean;
  /** Lifetime of a cached lookup (default 5000 ms; 0 disables the cache). */
  readonly cacheTtlMs?: number;
  /** Most cached (identity, destination) lookups (default 100,000; LRU beyond). */
  readonly cacheMaxEntries?: number;
  /** Most rows one lookup reads (default 1000); an identity with more rows covering one port may be denied. */
  readonly maxRowsPerLookup?: number;
  /** Most lookups waiting on PostgreSQL at once (default 1000); beyond that new ones are denied. */
  readonly maxPendingLookups?: number;
  /** Connections in the query pool (default 4). */
  readonly poolSize?: number;
  /** Bound on connecting and on each query (default 2000 ms). */
  readonly queryTimeoutMs?: number;
  /** Reconnect backoff of the LISTEN connection (default 100 ms doubling to 5000 ms). */
  readonly reconnectInitialMs?: number;
  readonly reconnectMaxMs?: number;
  /** Liveness query period on the LISTEN connection (default 5000 ms). */
  readonly heartbeatMs?: number;
  /** Most granted rows remembered to reconcile revocations missed during an outage (default 10,000). */
  readonly maxTrackedGrants?: number;
}

export interface PolicyDecision {
  readonly allowed: boolean;
  /** "granted", or why not: a row rejection (e.g. "bad_signature", "expired"), "no_permission", "address_not_permitted", "policy_unavailable", ... */
  readonly reason: string;
  /** The row that granted (when allowed). */
  readonly rowId?: string;
}

export interface PolicyStats {
  /** Rows that granted nothing, by reason, counted each time a lookup met them. */
  readonly rejectedRows: Record<RowRejection, number>;
  readonly allowed: number;
  readonly denied: number;
  readonly cacheHits: number;
  readonly cacheMisses: number;
  /** Queries issued (concurrent misses for one key share a query). */
  readonly lookups: number;
  /** Queries that failed (PostgreSQL unreachable, timeout). */
  readonly lookupErrors: number;
  /** Decisions denied because PostgreSQL was not available. */
  readonly unavailableDenials: number;
  readonly notifications: number;
  /** Successful reconnections of the LISTEN connection (the first connection not counted). */
  readonly reconnects: number;
  readonly revocations: number;
}

export type RevokeListener = (identity: string, rowId: string) => void;

interface Grant {
  readonly rowId: string;
  readonly identity: string;
  readonly signatureHex: string;
  readonly cidr: Cidr | null;
  readonly notBeforeUs: bigint;
  readonly expiresAtUs: bigint;
}

interface Lookup {
  readonly grants: readonly Grant[];
  /** Why the most relevant candidate row was rejected, when no row granted. */
  readonly rejection: RowRejection | undefined;
}

interface Notification {
  schema?: unknown;
  op?: unknown;
  id?: unknown;
  identity?: unknown;
  old_identity?: unknown;
}

const deny = (reason: string): PolicyDecision => ({ allowed: false, reason });

export class PgPermissionPolicy {
  private readonly schema: string;
  private readonly keyring: Keyring;
  private readonly clock: Clock;
  private readonly logger: PolicyLogger;
  private readonly audit: boolean;
  private readonly maxRows: number;
  private readonly maxPending: number;
  private readonly maxTracked: number;
  private readonly pool: pg.Pool;
  private readonly listener: NotifyListener;
  private readonly cache: DecisionCache<Lookup>;
  private readonly inflight = new Map<string, Promise<Lookup | undefined>>();
  /** Rows that granted a tunnel, by id, LRU-bounded: what to reconcile after missed notifications. */
  private readonly tracked = new Map<string, Grant>();
  private readonly revokeListeners = new Set<RevokeListener>();
  private pending = 0;
  private closed = false;
  /** The last lookup failed (logged once per run of failures). */
  private failing = false;
  private readonly counters = {
    rejectedRows: Object.fromEntries(ROW_REJECTIONS.map((r) => [r, 0])) as Record<RowRejection, number>,
    allowed: 0,
    denied: 0,
    cacheHits: 0,
    cacheMisses: 0,
    lookups: 0,
    lookupErrors: 0,
    unavailableDenials: 0,
    notifications: 0,
    reconnects: 0,
    revocations: 0,
  };

  constructor(o: PgPermissionPolicyOptions) {
    // Named, so operators can tell the gateway's connections apart in pg_stat_activity.
    const clientConfig: pg.ClientConfig = { application_name: "portcullis", ...(o.clientConfig ?? { connectionString: o.url }) };
    if (o.clientConfig === undefined && o.url === undefined) throw new TypeError("PgPermissionPolicy: url or clientConfig is required");
    this.schema = o.schema ?? "public";
    quotedSchema(this.schema);
    this.keyring = o.keyring;
    this.clock = o.clock ?? systemClock;
    this.logger = o.logger ?? silentLogger;
    this.audit = o.auditDestinations ?? false;
    this.maxRows = integerAtLeast("maxRowsPerLookup", o.maxRowsPerLookup ?? 1000, 1);
    this.maxPending = integerAtLeast("maxPendingLookups", o.maxPendingLookups ?? 1000, 1);
    this.maxTracked = integerAtLeast("maxTrackedGrants", o.maxTrackedGrants ?? 10_000, 1);
    const timeout = integerAtLeast("queryTimeoutMs", o.queryTimeoutMs ?? 2000, 1);
    this.cache = new DecisionCache({
      clock: this.clock,
      ttlMs: nonNegative("cacheTtlMs", o.cacheTtlMs ?? 5000),
      maxEntries: o.cacheMaxEntries ?? 100_000,
    });
    this.pool = new (pgModule().Pool)({
      ...clientConfig,
      max: integerAtLeast("poolSize", o.poolSize ?? 4, 1),
      connectionTimeoutMillis: timeout,
      query_timeout: timeout,
      // The server gives up too, so a slow query does not keep running after the gateway stopped waiting.
      statement_timeout: timeout,
      idleTimeoutMillis: 10_000,
    });
    // An idle pooled connection dropped by the server reports here; the next query reconnects.
    this.pool.on("error", () => {});
    this.listener = new NotifyListener({
      clientConfig: { ...clientConfig, connectionTimeoutMillis: timeout },
      channel: NOTIFY_CHANNEL,
      clock: this.clock,
      initialBackoffMs: integerAtLeast("reconnectInitialMs", o.reconnectInitialMs ?? 100, 1),
      maxBackoffMs: integerAtLeast("reconnectMaxMs", o.reconnectMaxMs ?? 5000, 1),
      heartbeatMs: integerAtLeast("heartbeatMs", o.heartbeatMs ?? 5000, 1),
      onNotification: (p) => this.onNotification(p),
      onUp: () => this.onUp(),
      onDown: (reason) => this.onDown(reason),
    });
  }

  /** Creates a policy and makes its first connection attempt (it keeps retrying in the background if that fails). */
  static async open(o: PgPermissionPolicyOptions): Promise<PgPermissionPolicy> {
    const p = new PgPermissionPolicy(o);
    await p.start();
    return p;
  }

  /** Connects the LISTEN connection; resolves after the first attempt, successful or not. */
  start(): Promise<void> {
    return this.listener.start();
  }

  /** True while the policy can see changes to the table: connected and listening. */
  ready(): boolean {
    return !this.closed && this.listener.isUp;
  }

  onRevoke(listener: RevokeListener): () => void {
    this.revokeListeners.add(listener);
    return () => this.revokeListeners.delete(listener);
  }

  stats(): PolicyStats {
    return { ...this.counters, rejectedRows: { ...this.counters.rejectedRows } };
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  async decide(identity: string, host: string, port: number, address?: string): Promise<PolicyDecision> {
    let d: PolicyDecision;
    try {
      d = await this.decideInner(identity, host, port, address);
    } catch (e) {
      // Nothing above should throw; if something does, the answer is still no.
      this.logger.warn("permission check failed", { identity: String(identity).slice(0, 256), error: (e as Error).message });
      d = deny("policy_error");
    }
    if (d.allowed) this.counters.allowed++;
    else this.counters.denied++;
    return d;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cache.clear();
    await this.listener.close();
    await this.pool.end().catch(() => {});
  }

  private async decideInner(identity: string, rawHost: string, port: number, address?: string): Promise<PolicyDecision> {
    if (this.closed) return deny("closed");
    if (typeof identity !== "string" || identity.length === 0 || Buffer.byteLength(identity) > LIMITS.identityBytes) {
      return deny("invalid_identity");
    }
    const host = normalizeHost(rawHost);
    if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) return deny("invalid_destination");
    // The length prefix keeps (identity, host) pairs apart whatever the identity contains.
    const key = `${identity.length}:${identity}\n${host}\n${port}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      this.counters.cacheHits++;
      return this.evaluate(cached, address);
    }
    this.counters.cacheMisses++;
    if (!this.listener.isUp) {
      this.counters.unavailableDenials++;
      return deny("policy_unavailable");
    }
    let p = this.inflight.get(key);
    if (p === undefined) {
      if (this.pending >= this.maxPending) return deny("policy_overloaded");
      p = this.lookup(identity, host, port, key);
      this.inflight.set(key, p);
      void p.finally(() => {
        if (this.inflight.get(key) === p) this.inflight.delete(key);
      });
    }
    const found = await p;
    if (found === undefined) {
      this.counters.unavailableDenials++;
      return deny(this.closed ? "closed" : "policy_unavailable");
    }
    return this.evaluate(found, address);
  }

  private async lookup(identity: string, host: string, port: number, key: string): Promise<Lookup | undefined> {
    const generation = this.cache.generation;
    this.pending++;
    this.counters.lookups++;
    let rows: PermissionRow[];
    try {
      rows = await candidateRows(this.pool, this.schema, identity, port, this.maxRows);
    } catch (e) {
      this.counters.lookupErrors++;
      if (!this.closed) this.lookupFailed(e as Error);
      return undefined;
    } finally {
      this.pending--;
    }
    const now = this.clock.wallNow();
    const grants: Grant[] = [];
    let rejection: RowRejection | undefined;
    for (const row of rows) {
      if (row.identity !== identity || !hostMatches(row.hostPattern, host)) continue;
      const c = checkIntegrity(row, this.keyring);
      const reason = c.ok ? timeState(c.fields, now) : c.reason;
      if (reason !== "valid") {
        this.rejectRow(row, reason, host, port);
        rejection ??= reason;
        // A row that is not valid yet may become valid while cached; an expired or forged one never will.
        if (reason !== "not_yet_valid") continue;
      }
      if (!c.ok) continue;
      const f = c.fields;
      grants.push({
        rowId: f.id,
        identity,
        signatureHex: row.signature!.toString("hex"),
        cidr: f.cidr === null ? null : cidrAt("cidr", f.cidr),
        notBeforeUs: f.notBeforeUs,
        expiresAtUs: f.expiresAtUs,
      });
    }
    this.failing = false;
    const result: Lookup = { grants, rejection };
    this.cache.set(identity, key, result, generation);
    return result;
  }

  private evaluate(l: Lookup, address: string | undefined): PolicyDecision {
    const now = this.clock.wallNow();
    let reason: string | undefined;
    for (const g of l.grants) {
      const t = timeState(g, now);
      if (t !== "valid") {
        reason ??= t;
        continue;
      }
      // A CIDR-bound row needs the resolved address; without one it cannot grant.
      if (g.cidr !== null && (address === undefined || !g.cidr.contains(address))) {
        reason = "address_not_permitted";
        continue;
      }
      this.track(g);
      return { allowed: true, reason: "granted", rowId: g.rowId };
    }
    return deny(reason ?? l.rejection ?? "no_permission");
  }

  /**
   * A failed lookup denies. A network-level failure also means the LISTEN
   * connection is probably dead too, so it is re-checked now rather than at
   * the next heartbeat; a pool that is merely busy (queue timeout) or a
   * server-side error is not a lost server and must not make readiness flap.
   */
  private lookupFailed(e: Error): void {
    const code = (e as NodeJS.ErrnoException).code;
    const network = (typeof code === "string" && code.startsWith("E")) || /Connection terminated/i.test(e.message);
    if (network) this.listener.reportFailure(e.message);
    if (!this.failing) {
      this.failing = true;
      this.logger.warn("permission lookup failed; denying", { schema: this.schema, error: e.message });
    }
  }

  private rejectRow(row: PermissionRow, reason: RowRejection, host: string, port: number): void {
    this.counters.rejectedRows[reason]++;
    const fields: Record<string, unknown> = { reason, row_id: row.id, identity: row.identity, key_id: row.keyId };
    if (this.audit) {
      fields.destination = `${host}:${port}`;
      fields.host_pattern = row.hostPattern;
    }
    this.logger.warn("permission row rejected", fields);
  }

  private track(g: Grant): void {
    this.tracked.delete(g.rowId);
    this.tracked.set(g.rowId, g);
    if (this.tracked.size > this.maxTracked) this.tracked.delete(this.tracked.keys().next().value as string);
  }

  private onNotification(payload: string | undefined): void {
    this.counters.notifications++;
    let n: Notification;
    try {
      n = JSON.parse(payload ?? "") as Notification;
    } catch {
      // Cannot tell what changed: forget everything rather than serve a stale grant.
      this.forgetAll();
      return;
    }
    if (n.schema !== this.schema) return;
    if (n.op === "TRUNCATE") {
      this.forgetAll();
      void this.reconcile();
      return;
    }
    if (typeof n.identity !== "string" || typeof n.id !== "string") {
      this.forgetAll();
      return;
    }
    this.forget(n.identity);
    if (n.op === "UPDATE" && typeof n.old_identity === "string" && n.old_identity !== n.identity) this.forget(n.old_identity);
    // An updated row is a different grant from the one live tunnels were admitted under.
    if (n.op === "DELETE" || n.op === "UPDATE") {
      this.revoked(typeof n.old_identity === "string" ? n.old_identity : n.identity, n.id);
    }
  }

  /** Drops an identity's cached lookups, and its lookups in flight so later callers do not join a stale one. */
  private forget(identity: string): void {
    this.cache.invalidate(identity);
    const prefix = `${identity.length}:${identity}\n`;
    for (const k of this.inflight.keys()) if (k.startsWith(prefix)) this.inflight.delete(k);
  }

  private forgetAll(): void {
    this.cache.clear();
    this.inflight.clear();
  }

  private revoked(identity: string, rowId: string): void {
    this.tracked.delete(rowId);
    this.counters.revocations++;
    this.logger.info("permission revoked", { row_id: rowId, identity });
    for (const l of this.revokeListeners) {
      try {
        l(identity, rowId);
      } catch (e) {
        this.logger.warn("revoke listener failed", { row_id: rowId, identity, error: (e as Error).message });
      }
    }
  }

  /** After notifications may have been missed: report every tracked grant whose row is gone or re-signed. */
  private async reconcile(): Promise<void> {
    const grants = [...this.tracked.values()];
    for (let i = 0; i < grants.length && !this.closed; i += 1000) {
      const chunk = grants.slice(i, i + 1000);
      let current: Map<string, string>;
      try {
        current = await currentSignatures(this.pool, this.schema, chunk.map((g) => g.rowId));
      } catch {
        return; // The next reconnection reconciles again.
      }
      for (const g of chunk) {
        if (current.get(g.rowId) !== g.signatureHex && this.tracked.get(g.rowId) === g) this.revoked(g.identity, g.rowId);
      }
    }
  }

  private onUp(): void {
    if (this.listener.connections > 1) {
      this.counters.reconnects++;
      // Changes made while disconnected were not notified.
      this.forgetAll();
      void this.reconcile();
    }
    this.logger.info("permission store connected", { schema: this.schema });
  }

  private onDown(reason: string): void {
    this.logger.warn("permission store unreachable; denying new tunnels except cached decisions", { schema: this.schema, error: reason });
  }
}
