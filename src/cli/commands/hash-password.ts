/** The `hash-password` command: hashes a proxy Basic user's password read from standard input. */
import { hashPassword } from "../../gateway/identity/passwords.js";

export const summary = "hash a password for a proxy Basic user (reads it from standard input)";

const HELP = `usage: portcullis hash-password

Reads a password from standard input and prints its scrypt hash
(scrypt$N$r$p$salt$hash), to put in the users of a listener with Basic
proxy authentication (see docs/identity.md).

On a terminal the password is asked for twice and not echoed. Piped, the
first line is the password (one trailing newline is dropped):

  printf '%s\\n' "$PASSWORD" | portcullis hash-password

Exit status: 0 printed, 2 no password or bad usage.`;

// Longer input is not a password someone types; refuse rather than buffer it.
const MAX_PASSWORD_BYTES = 1024;

class UsageError extends Error {}

/** All of piped stdin, bounded; exactly one trailing line break removed. */
async function readPiped(stdin: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    if (size > MAX_PASSWORD_BYTES + 2) throw new UsageError(`password longer than ${MAX_PASSWORD_BYTES} bytes`);
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  if (/[\r\n]/.test(text)) throw new UsageError("standard input must hold one line, the password");
  return text;
}

/**
 * One line per prompt from the terminal, without echo (raw mode, held from
 * before the first prompt until after the last answer, so nothing typed in
 * between is echoed); backspace edits, Ctrl-C or Ctrl-D aborts.
 */
function readHidden(prompts: string[], stdin: NodeJS.ReadStream): Promise<string[]> {
  stdin.setRawMode(true);
  const answers: string[] = [];
  let value = "";
  process.stderr.write(prompts[0]!);
  return new Promise((resolve, reject) => {
    const finish = (err?: Error): void => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      if (err) {
        process.stderr.write("\n");
        reject(err);
      } else resolve(answers);
    };
    const onData = (data: Buffer): void => {
      for (const ch of data.toString("utf8")) {
        if (ch === "\r" || ch === "\n") {
          answers.push(value);
          value = "";
          process.stderr.write("\n");
          if (answers.length === prompts.length) return finish();
          process.stderr.write(prompts[answers.length]!);
        } else if (ch === "\u0003" || ch === "\u0004") return finish(new UsageError("aborted"));
        else if (ch === "\u007f" || ch === "\b") value = [...value].slice(0, -1).join("");
        else if (ch >= " ") value += ch;
        if (Buffer.byteLength(value) > MAX_PASSWORD_BYTES) return finish(new UsageError(`password longer than ${MAX_PASSWORD_BYTES} bytes`));
      }
    };
    stdin.on("data", onData);
    stdin.resume();
  });
}

async function readPassword(stdin: NodeJS.ReadStream): Promise<string> {
  if (!stdin.isTTY) return readPiped(stdin);
  const [first, again] = await readHidden(["Password: ", "Again: "], stdin);
  if (first !== again) throw new UsageError("the passwords differ");
  return first!;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  if (argv.length > 0) {
    console.error(`portcullis hash-password: unexpected argument ${JSON.stringify(argv[0])} (see --help)`);
    return 2;
  }
  let password: string;
  try {
    password = await readPassword(process.stdin);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`portcullis hash-password: ${err.message}`);
    return 2;
  }
  if (password.length === 0) {
    console.error("portcullis hash-password: empty password");
    return 2;
  }
  console.log(await hashPassword(password));
  return 0;
}
