/**
 * What a listener's signed-permission policy needs beyond its schema, checked
 * where the configuration is checked (check-config, run before any listener
 * opens, reload): a PostgreSQL URL from the file or the environment, and
 * public key files that read as Ed25519 public keys. Problems name the key
 * path, never the URL (it may carry a password).
 */
import { InvalidArgumentError } from "../../core/errors.js";
import { loadPublicKey } from "./signing-keys.js";
import type { ListenerPolicyConfig } from "./config-schema.js";

export function policyResourceProblems(at: string, p: ListenerPolicyConfig, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const url = p.url ?? env[p.url_env];
  if (url === undefined || url === "") problems.push(`${at}.url: not set, nor the environment variable ${p.url_env} (the PostgreSQL URL of the permission table)`);
  p.public_key.forEach((file, j) => {
    try {
      loadPublicKey(file);
    } catch (e) {
      const why = e instanceof InvalidArgumentError ? e.message.replace(`${file}: `, "") : String(e);
      problems.push(`${at}.public_key${p.public_key.length > 1 ? `[${j}]` : ""}: ${JSON.stringify(file)} ${why}`);
    }
  });
  return problems;
}
