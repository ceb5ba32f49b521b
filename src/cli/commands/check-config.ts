/** The `check-config` command: validates a configuration file and prints the effective configuration. */
import { stringify as toToml } from "smol-toml";
import { effectiveConfig } from "../../gateway/config/effective.js";
import { loadConfigFile } from "../../gateway/config/load.js";
import { checkResources } from "../../gateway/config/resources.js";
import { ArgsError, parseCommandArgs } from "../args.js";

export const summary = "validate a configuration file and print the effective configuration";

const HELP = `usage: portcullis check-config -c FILE [--json]

Validates FILE (TOML, or YAML for .yaml/.yml) with the PORTCULLIS__*
environment overrides applied, and prints the effective configuration:
every default filled in, secrets redacted, file paths resolved. It checks
everything \`portcullis run\` checks before it opens a listener (files that
must read, tokens and URLs the environment must supply, addresses two
listeners both want). On problems it prints one line per problem naming
the key path and exits with code 2.

  -c, --config FILE   the configuration file
      --json          print JSON instead of TOML`;

export async function main(argv: string[]): Promise<number> {
  let values: { config?: string; json?: boolean; help?: boolean };
  try {
    ({ values } = parseCommandArgs({
      args: argv,
      options: { config: { type: "string", short: "c" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    }));
  } catch (err) {
    if (!(err instanceof ArgsError)) throw err;
    console.error(`portcullis check-config: ${err.message} (try --help)`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.config === undefined) {
    console.error("portcullis check-config: -c FILE is required");
    return 2;
  }
  const r = loadConfigFile(values.config);
  const problems = r.ok ? checkResources(r.config) : r.problems;
  if (!r.ok || problems.length > 0) {
    for (const p of problems) console.error(p);
    return 2;
  }
  const eff = effectiveConfig(r.config);
  console.log(values.json ? JSON.stringify(eff, null, 2) : toToml(eff));
  return 0;
}
