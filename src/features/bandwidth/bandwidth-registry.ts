/** The registry of bandwidth buckets: one per key, shared by the key's live connections. */
import type { Clock } from "../../core/clock.js";
import { PortcullisError } from "../../core/errors.js";
import type { Rng } from "../../core/random.js";
import { integerAtLeast, nonNegative, positive } from "../../core/validate.js";
import { ipKey, type IpKeyOptions } from "../../net/ip-key.js";
import type { RateSpec } from "../../algorithms/byte-bucket.js";
import { type BandwidthConfig, type DirectionalRate } from "./bandwidth-config.js";
import { ChainGate, type Gate } from "./gate.js";
import { QuotaLease, type QuotaSource } from "./quota.js";
import { SharedBucket, type SharedBucketStats } from "./shared-bucket.js";

export type Direction = "upload" | "download";

/** The registry is full of keys that all have live connections: the new connection is refused (fail closed). */
export class BandwidthCapacityError extends PortcullisError {
  constructor(maxKeys: number) {
    super(`bandwidth registry full: ${maxKeys} keys, all with live connections`, "bandwidth_capacity");
  }
}

export interface BandwidthRegistryOptions {
  clock: Clock;
  config: BandwidthConfig;
  /** Most keys (identities plus IPs) tracked at once (default 100,000). */
  maxKeys?: number;
  /** A key with no connection is dropped once its buckets are full again and it has been unused this long (default 60 s). */
  idleMs?: number;
  /** How client addresses become per-IP keys (default: IPv4 /32, IPv6 /64). */
  ipKey?: IpKeyOptions;
  /** Grant size in bytes (default: about 5 ms at the key's rate, 1-64 KiB). */
  quantumBytes?: number;
  /**
   * Shares identity buckets beyond this process (for example every gateway on
   * one Redis through RedisQuotaSource), and per-IP buckets too with `ip`.
   * `sliceBytes` is what each bucket asks of the source at once and may
   * hold unspent (default 16 KiB; the source may hold its own lease behind
   * it); `retryMs` the wait after the source granted nothing (default 20 ms,
   * drawn from [0.5, 1.5) × it by `rng`).
   */
  quota?: { source: QuotaSource; sliceBytes?: number; retryMs?: number; ip?: boolean; rng?: Rng };
}

/** One connection's shaping: a gate per direction, to hand to createShapedPipe / relayShaped. */
export interface ConnectionShaping {
  readonly upload: Gate;
  readonly download: Gate;
  /** Detaches from every bucket (idempotent); the pipes also do this when they finish. */
  close(): void;
}

export interface DirectionMetrics {
  /** Bytes let through to the other side. */
  bytesRelayed: number;
  /** Bytes that had to wait for a bucket before they went. */
  bytesDelayed: number;
  /** Milliseconds, summed over buckets, during which some connection waited. */
  throttledMs: number;
}

export interface BandwidthMetrics {
  upload: DirectionMetrics;
  download: DirectionMetrics;
  /** Keys tracked now. */
  keys: number;
  /** Keys dropped to make room while their buckets still held debt. */
  evictions: number;
  /** Connections refused because every tracked key had live connections. */
  refused: number;
}

interface Entry {
  readonly key: string;
  readonly upload: SharedBucket;
  readonly download: SharedBucket;
}

/** Entries looked at per open to reclaim idle ones: a small constant, so an open stays O(1). */
const SWEEP_PER_OPEN = 2;
/** Entries scanned for one without connections when the registry is full. */
const EVICT_SCAN = 64;

const ratesEqual = (a: RateSpec | null, b: RateSpec | null): boolean =>
  a === b || (a !== null && b !== null && a.bytesPerSecond === b.bytesPerSecond && (a.burst ?? a.bytesPerSecond) === (b.burst ?? b.bytesPerSecond));

/**
 * Byte buckets by identity and by IP, one per direction, shared by every
 * connection of the key. Bounded: at most `maxKeys` keys, kept in one Map in
 * least-recently-used order; each open looks at the oldest entries and drops
 * those with no connection whose buckets have refilled (no timer per key),
 * and a full registry evicts the oldest key without connections. Overrides
 * and reloads go through `update`, which re-rates live buckets in place.
 */
export class BandwidthRegistry {
  private readonly clock: Clock;
  private config: BandwidthConfig;
  private readonly maxKeys: number;
  private readonly idleMs: number;
  private readonly ipKeyOptions: IpKeyOptions;
  private readonly quantum: number | undefined;
  private readonly quota: BandwidthRegistryOptions["quota"];
  private readonly entries = new Map<string, Entry>();
  private readonly bucketStats: Record<Direction, SharedBucketStats> = {
    upload: { bytesGranted: 0, bytesDelayed: 0, throttledMs: 0 },
    download: { bytesGranted: 0, bytesDelayed: 0, throttledMs: 0 },
  };
  private readonly relayed: Record<Direction, number> = { upload: 0, download: 0 };
  private evicted = 0;
  private refusedCount = 0;

  constructor(o: BandwidthRegistryOptions) {
    this.clock = o.clock;
    this.config = o.config;
    this.maxKeys = integerAtLeast("maxKeys", o.maxKeys ?? 100_000, 1);
    this.idleMs = nonNegative("idleMs", o.idleMs ?? 60_000);
    this.ipKeyOptions = o.ipKey ?? {};
    this.quantum = o.quantumBytes === undefined ? undefined : Math.ceil(positive("quantumBytes", o.quantumBytes));
    this.quota = o.quota;
  }

  /** Keys tracked now. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Shaping for a new connection: the identity's buckets (when there is an
   * identity), then the IP's. Throws BandwidthCapacityError when the
   * registry is full of keys that all have connections.
   */
  open(peer: { ip: string; identity?: string | undefined }): ConnectionShaping {
    const now = this.clock.now();
    this.sweep(now);
    const entries: Entry[] = [];
    try {
      if (peer.identity !== undefined) entries.push(this.entry(`id:${peer.identity}`));
      entries.push(this.entry(`ip:${ipKey(peer.ip, this.ipKeyOptions)}`));
    } catch (e) {
      if (e instanceof BandwidthCapacityError) this.refusedCount++;
      throw e;
    }
    const upload = this.gate("upload", entries.map((e) => e.upload.attach()));
    const download = this.gate("download", entries.map((e) => e.download.attach()));
    return {
      upload,
      download,
      close() {
        upload.close();
        download.close();
      },
    };
  }

  /** Applies a new configuration: live connections continue at the new rates from now on. */
  update(config: BandwidthConfig): void {
    this.config = config;
    for (const e of this.entries.values()) {
      const r = this.rateOf(e.key);
      if (!ratesEqual(e.upload.rate, r.upload)) e.upload.setRate(r.upload);
      if (!ratesEqual(e.download.rate, r.download)) e.download.setRate(r.download);
    }
  }

  /** The rates a key gets under the current configuration (`id:<identity>` or `ip:<ip key>`). */
  rateOf(key: string): DirectionalRate {
    if (key.startsWith("id:")) return this.config.identityOverrides.get(key.slice(3)) ?? this.config.perIdentity;
    const ip = key.slice(3);
    const addr = ip.includes("/") ? ip.slice(0, ip.indexOf("/")) : ip;
    for (const o of this.config.cidrOverrides) if (o.cidr.contains(addr)) return o.rate;
    return this.config.perIp;
  }

  /** Counters for the metrics hooks (a snapshot; totals survive key expiry). */
  metrics(): BandwidthMetrics {
    const dir = (d: Direction): DirectionMetrics => ({
      bytesRelayed: this.relayed[d],
      bytesDelayed: this.bucketStats[d].bytesDelayed,
      throttledMs: this.bucketStats[d].throttledMs,
    });
    return { upload: dir("upload"), download: dir("download"), keys: this.entries.size, evictions: this.evicted, refused: this.refusedCount };
  }

  /**
   * The `limit` tracked keys (`id:<identity>`, `ip:<ip key>`) whose buckets
   * held data back longest, most first, in milliseconds per direction. Keys
   * that were never throttled are left out; a key dropped as idle takes its
   * time with it. O(n) over tracked keys: for the admin API, not a hot path.
   */
  throttled(limit: number): Array<{ key: string; uploadMs: number; downloadMs: number }> {
    const out: Array<{ key: string; uploadMs: number; downloadMs: number }> = [];
    for (const e of this.entries.values()) {
      const uploadMs = e.upload.throttledMs;
      const downloadMs = e.download.throttledMs;
      if (uploadMs + downloadMs > 0) out.push({ key: e.key, uploadMs, downloadMs });
    }
    out.sort((a, b) => b.uploadMs + b.downloadMs - (a.uploadMs + a.downloadMs) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return out.slice(0, Math.max(0, limit));
  }

  /** Tracked keys, oldest first (for inspection and tests; O(n)). */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  private gate(dir: Direction, stages: Gate[]): Gate {
    const inner = stages.length === 1 ? stages[0]! : new ChainGate(stages);
    const relayed = this.relayed;
    // Counts what passes the last stage: those are the bytes the pipe moves.
    let pending: ((n: number) => void) | undefined;
    const onGrant = (n: number): void => {
      relayed[dir] += n;
      const g = pending!;
      pending = undefined;
      g(n);
    };
    return {
      acquire(max, grant) {
        pending = grant;
        const n = inner.acquire(max, onGrant);
        if (n > 0) {
          pending = undefined;
          relayed[dir] += n;
        }
        return n;
      },
      cancel: () => {
        pending = undefined;
        inner.cancel();
      },
      close: () => {
        pending = undefined;
        inner.close();
      },
    };
  }

  private entry(key: string): Entry {
    const found = this.entries.get(key);
    if (found) {
      // Most recently used goes last.
      this.entries.delete(key);
      this.entries.set(key, found);
      return found;
    }
    if (this.entries.size >= this.maxKeys) this.evictOne();
    const rate = this.rateOf(key);
    const e: Entry = {
      key,
      upload: this.bucket(`${key}:up`, rate.upload, "upload"),
      download: this.bucket(`${key}:down`, rate.download, "download"),
    };
    this.entries.set(key, e);
    return e;
  }

  private bucket(leaseKey: string, spec: RateSpec | null, dir: Direction): SharedBucket {
    let lease: QuotaLease | undefined;
    let bucket: SharedBucket | undefined = undefined;
    if (this.quota && (leaseKey.startsWith("id:") || this.quota.ip === true)) {
      const q = this.quota;
      lease = new QuotaLease({
        source: q.source,
        key: `bw:${leaseKey}`,
        clock: this.clock,
        spec: () => bucket?.rate ?? spec,
        sliceBytes: q.sliceBytes ?? 16 * 1024,
        ...(q.retryMs === undefined ? {} : { retryMs: q.retryMs }),
        ...(q.rng === undefined ? {} : { rng: q.rng }),
      });
    }
    bucket = new SharedBucket(this.clock, spec, this.bucketStats[dir], this.quantum, lease);
    return bucket;
  }

  /** Drops up to a few of the oldest keys that have no connection and whose buckets are full again. */
  private sweep(now: number): void {
    let looked = 0;
    for (const e of this.entries.values()) {
      if (looked++ >= SWEEP_PER_OPEN) break;
      const idle = e.upload.isIdle(now) && e.download.isIdle(now);
      const quiet = now - Math.max(e.upload.lastActive, e.download.lastActive) >= this.idleMs;
      if (idle && quiet) this.drop(e);
      else if (e.upload.connections + e.download.connections > 0) {
        // In use: move it back so the sweep keeps looking at keys that may be idle.
        this.entries.delete(e.key);
        this.entries.set(e.key, e);
      } else break;
    }
  }

  /** Makes room: the least recently used key without connections goes, debt and all. */
  private evictOne(): void {
    let scanned = 0;
    for (const e of this.entries.values()) {
      if (scanned++ >= EVICT_SCAN) break;
      if (e.upload.connections + e.download.connections === 0) {
        this.drop(e);
        this.evicted++;
        return;
      }
    }
    throw new BandwidthCapacityError(this.maxKeys);
  }

  private drop(e: Entry): void {
    e.upload.dispose();
    e.download.dispose();
    this.entries.delete(e.key);
  }
}
