#!/usr/bin/env node
/**
 * `portcullis <command>`: dispatches to src/cli/commands/<command>.ts. Each
 * command module exports `main(argv: string[]): Promise<number>` returning
 * the exit code (2 for bad usage or bad configuration) and `summary`.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { holdOptimizingCompilers } from "./compiler-hold.js";

interface CommandModule {
  main(argv: string[]): Promise<number>;
  summary: string;
}

const COMMANDS = ["run", "check-config", "hash-password", "bans", "permit", "db", "bench", "version"] as const;

function moduleUrl(name: string): URL | undefined {
  for (const ext of [".ts", ".js"]) {
    const url = new URL(`./commands/${name}${ext}`, import.meta.url);
    if (existsSync(fileURLToPath(url))) return url;
  }
  return undefined;
}

async function load(name: string): Promise<CommandModule | undefined> {
  const url = moduleUrl(name);
  return url ? ((await import(url.href)) as CommandModule) : undefined;
}

async function usage(): Promise<string> {
  const lines = ["usage: portcullis <command> [options]", "", "commands:"];
  for (const c of COMMANDS) {
    const m = await load(c);
    if (m) lines.push(`  ${c.padEnd(14)} ${m.summary}`);
  }
  lines.push("", "Run `portcullis <command> --help` for a command's options.");
  return lines.join("\n");
}

export async function cli(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help") {
    console.log(await usage());
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === "--version" || cmd === "-v") return cli(["version"]);
  // `run` turns the compilers back on once its listeners are up (src/cli/compiler-hold.ts); loading it is part of its startup.
  if (cmd === "run") holdOptimizingCompilers();
  const m = (COMMANDS as readonly string[]).includes(cmd) ? await load(cmd) : undefined;
  if (!m) {
    console.error(`portcullis: unknown command "${cmd}"\n\n${await usage()}`);
    return 2;
  }
  return m.main(rest);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  cli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // The command is done (a gateway has stopped and flushed its log): a handle
      // left open somewhere must not keep the process alive past a stop.
      setTimeout(() => process.exit(code), 3000).unref();
    },
    (err: unknown) => {
      // Never a stack trace for the operator: one line, exit 1.
      console.error(`portcullis: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
