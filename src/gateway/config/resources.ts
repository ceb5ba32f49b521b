/**
 * Checks what the schema cannot: that the files a configuration names can be
 * read and make a usable TLS context (and public keys), what the environment
 * must supply (admin token, policy URL), that no two listeners want one
 * address, and that this Node offers what the configuration asks of it
 * (reuse_port). `run` and `check-config` call the same function, so whatever run
 * would refuse at start, check-config refuses first. Problems name the key
 * path like schema problems do.
 */
import { tlsModule } from "../../core/lazy-tls.js";
import { readFileSync } from "node:fs";
import type { Config } from "./schema.js";
import { adminTokenProblems } from "./admin-token.js";
import { authEnvironmentProblems } from "../identity/config-schema.js";
import { storeProblems } from "../store/gateway-store.js";
import { policyResourceProblems } from "../../features/permissions/config-resources.js";
import { bindConflicts } from "./bind-conflicts.js";
import { reusePortProblems } from "./reuse-port.js";

export function checkResources(c: Config, env: NodeJS.ProcessEnv = process.env): string[] {
  // What the environment decides: the admin token (from token_env) and libuv's thread pool size.
  const problems: string[] = [...adminTokenProblems(c.admin, env), ...authEnvironmentProblems(c.auth, env), ...storeProblems(c.store, env), ...bindConflicts(c), ...reusePortProblems(c)];
  c.listener.forEach((l, i) => {
    // Signed permissions: the table's URL and the trusted public keys.
    if (l.policy) problems.push(...policyResourceProblems(`listener[${i}].policy`, l.policy, env));
    if (!l.tls) return;
    const files: Array<["cert" | "key" | "client_ca", string | undefined]> = [
      ["cert", l.tls.cert],
      ["key", l.tls.key],
      ["client_ca", l.tls.client_ca],
    ];
    let readable = true;
    for (const [k, path] of files) {
      if (path === undefined) continue;
      try {
        readFileSync(path);
      } catch (err) {
        readable = false;
        problems.push(`listener[${i}].tls.${k}: cannot read ${JSON.stringify(path)} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
      }
    }
    if (!readable) return;
    try {
      tlsModule().createSecureContext({ cert: readFileSync(l.tls.cert), key: readFileSync(l.tls.key), ca: l.tls.client_ca ? readFileSync(l.tls.client_ca) : undefined });
    } catch (err) {
      const msg = err instanceof Error ? err.message.split("\n")[0] : String(err);
      problems.push(`listener[${i}].tls: certificate and key do not make a TLS context (${msg})`);
    }
  });
  return problems;
}
