/**
 * `portcullis bans list | add | remove`: the admin API's ban endpoints from
 * a shell. Talks to a running gateway's admin listener; never touches its
 * state any other way.
 */
import { ArgsError, parseCommandArgs } from "../args.js";
import { ConfigTargetError, adminTarget } from "../config-target.js";

export const summary = "list, add or remove bans on a running gateway (admin API)";

const HELP = `usage: portcullis bans <command> [options]

commands:
  list                       active bans (key, end, time left)
  add IP [--duration D] [--reason TEXT]
                             ban an address now; D like "10m", "2h" (default:
                             the gateway's escalating ban length)
  remove IP                  lift a ban; the address may connect at once

options:
  -c, --config FILE  the gateway's configuration: the admin listener's address
                     and token are read from its [admin] section
  --url URL          admin listener (default: from -c FILE, else
                     $PORTCULLIS_ADMIN_URL or http://127.0.0.1:9090)
  --token TOKEN      admin token (default: from -c FILE, else
                     $PORTCULLIS_ADMIN_TOKEN)
  --json         print the API's JSON instead of a table
  -h, --help

Exit codes: 0 done, 1 the gateway refused or could not be reached, 2 bad usage.`;

/** Pages followed by `list` at most: 100 pages of 500 bans. */
const MAX_PAGES = 100;
const TIMEOUT_MS = 10_000;

class ApiError extends Error {}

interface Ctx {
  url: string;
  token: string;
}

async function call(c: Ctx, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(c.url.replace(/\/+$/, "") + path, {
      method,
      headers: { authorization: `Bearer ${c.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const cause = e.cause?.code ?? e.cause?.message ?? e.message;
    throw new ApiError(`cannot reach ${c.url} (${cause})`);
  }
  let json: Record<string, unknown> = {};
  try {
    json = (await res.json()) as Record<string, unknown>;
  } catch {
    /* not JSON: reported by status below */
  }
  if (!res.ok) {
    const e = json.error as { code?: string; message?: string } | undefined;
    throw new ApiError(e?.code ? `${e.code}: ${e.message ?? ""}` : `HTTP ${res.status}`);
  }
  return json;
}

function left(ms: number): string {
  const s = Math.ceil(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

async function list(c: Ctx, json: boolean): Promise<number> {
  const bans: Array<{ key: string; until: string; remaining_ms: number }> = [];
  let cursor: string | null = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const r = await call(c, "GET", `/v1/bans?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    bans.push(...(r.bans as typeof bans));
    cursor = r.next_cursor as string | null;
    if (cursor === null) break;
  }
  if (json) {
    console.log(JSON.stringify({ bans }, null, 2));
    return 0;
  }
  if (bans.length === 0) {
    console.log("no active bans");
    return 0;
  }
  const width = Math.max(3, ...bans.map((b) => b.key.length));
  console.log(`${"KEY".padEnd(width)}  ${"UNTIL".padEnd(24)}  LEFT`);
  for (const b of bans) console.log(`${b.key.padEnd(width)}  ${b.until.padEnd(24)}  ${left(b.remaining_ms)}`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: "string", short: "c" },
        url: { type: "string" },
        token: { type: "string" },
        duration: { type: "string" },
        reason: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    if (!(err instanceof ArgsError)) throw err;
    console.error(`portcullis bans: ${err.message} (try --help)`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const [cmd, ip, ...extra] = positionals;
  const usage = (msg: string): number => {
    console.error(`portcullis bans: ${msg} (try --help)`);
    return 2;
  };
  if (cmd === undefined) return usage("a command is required");
  if (!["list", "add", "remove"].includes(cmd)) return usage(`unknown command "${cmd}"`);
  if (cmd === "list" ? ip !== undefined : ip === undefined || extra.length > 0) return usage(cmd === "list" ? "list takes no address" : `${cmd} takes one address`);
  if (cmd !== "add" && (values.duration !== undefined || values.reason !== undefined)) return usage("--duration and --reason are for add");
  // Flags first, then the configuration file, then the environment.
  let fromFile: { url: string; token: string } | undefined;
  if (values.config !== undefined && (values.url === undefined || values.token === undefined)) {
    try {
      fromFile = adminTarget(values.config, process.env);
    } catch (err) {
      if (!(err instanceof ConfigTargetError)) throw err;
      console.error(`portcullis bans: ${err.message}`);
      return 2;
    }
  }
  const token = values.token ?? fromFile?.token ?? process.env.PORTCULLIS_ADMIN_TOKEN;
  if (token === undefined || token.length === 0) return usage("no token: pass -c FILE or --token, or set PORTCULLIS_ADMIN_TOKEN");
  const c: Ctx = { url: values.url ?? fromFile?.url ?? process.env.PORTCULLIS_ADMIN_URL ?? "http://127.0.0.1:9090", token };
  try {
    if (cmd === "list") return await list(c, values.json ?? false);
    if (cmd === "add") {
      const r = await call(c, "POST", "/v1/bans", { ip, ...(values.duration ? { duration: values.duration } : {}), ...(values.reason ? { reason: values.reason } : {}) });
      if (values.json) console.log(JSON.stringify(r, null, 2));
      else console.log(`banned ${String(r.key)} until ${String(r.until)}`);
      return 0;
    }
    const r = await call(c, "DELETE", `/v1/bans/${encodeURIComponent(ip!)}`);
    if (values.json) console.log(JSON.stringify(r, null, 2));
    else console.log(`unbanned ${String(r.key)}`);
    return 0;
  } catch (err) {
    if (err instanceof ApiError) {
      console.error(`portcullis bans: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
