import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { verifyPassword } from "../../src/gateway/identity/passwords.js";
import { CLI } from "../helpers/cli.js";

const BIN = CLI;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command, writing `input` to it (all at once, or in answer to prompts), bounded in time. */
function runCli(cmd: string, args: string[], input: string | Array<[RegExp, string]>, timeoutMs = 30_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const answers = typeof input === "string" ? [] : [...input];
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out; stdout so far: ${JSON.stringify(stdout)}`));
    }, timeoutMs);
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      while (answers.length > 0 && answers[0]![0].test(stdout)) {
        const [re, text] = answers.shift()!;
        stdout = stdout.replace(re, "");
        child.stdin.write(text);
      }
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (typeof input === "string") child.stdin.end(input);
  });
}

test("hash-password hashes the piped password", async () => {
  const r = await runCli(process.execPath, [BIN, "hash-password"], "open sesame\n");
  assert.equal(r.code, 0, r.stderr);
  const hash = r.stdout.trim();
  assert.match(hash, /^scrypt\$/);
  assert.equal(await verifyPassword("open sesame", hash), true);
  assert.equal(await verifyPassword("open sesame\n", hash), false);
  assert.ok(!r.stdout.includes("open sesame"));
});

test("hash-password keeps inner spaces and takes input without a newline", async () => {
  const r = await runCli(process.execPath, [BIN, "hash-password"], " two  spaces ");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await verifyPassword(" two  spaces ", r.stdout.trim()), true);
});

test("hash-password refuses empty, multi-line and oversized input with exit 2", async () => {
  for (const input of ["", "\n", "one\ntwo\n", "x".repeat(2000)]) {
    const r = await runCli(process.execPath, [BIN, "hash-password"], input);
    assert.equal(r.code, 2, JSON.stringify(input.slice(0, 20)));
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^portcullis hash-password: /);
  }
  const extra = await runCli(process.execPath, [BIN, "hash-password", "pw"], "");
  assert.equal(extra.code, 2);
});

test("hash-password --help", async () => {
  const r = await runCli(process.execPath, [BIN, "hash-password", "--help"], "");
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: portcullis hash-password/);
  const top = await runCli(process.execPath, [BIN, "--help"], "");
  assert.match(top.stdout, /hash-password +hash a password/);
});

test("on a terminal the password is asked twice and never echoed", async () => {
  // script(1) gives the command a pseudo-terminal; the answers are typed when the prompts appear.
  const cmd = `${process.execPath} ${BIN} hash-password`;
  const ok = await runCli("script", ["-qec", cmd, "/dev/null"], [
    [/Password: /, "tty-secrX\u007fet\r"], // a typo, erased with backspace
    [/Again: /, "tty-secret\r"],
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(!ok.stdout.includes("tty-secr"), "the password was echoed");
  const hash = /scrypt\$\S+/.exec(ok.stdout)?.[0];
  assert.ok(hash, ok.stdout);
  assert.equal(await verifyPassword("tty-secret", hash), true);

  const differ = await runCli("script", ["-qec", cmd, "/dev/null"], [
    [/Password: /, "one\r"],
    [/Again: /, "two\r"],
  ]);
  assert.equal(differ.code, 2);
  assert.match(differ.stdout, /passwords differ/);
});
