#!/usr/bin/env node
// The Debian packages the tests and benchmarks drive for real, in one list
// for the test runner and for CI.
//
//   node scripts/system-deps.mjs            prints the packages still missing (all of them)
//   missingFor(files)                        the packages the given test files need
//
// A test file needs a tool when a TypeScript file in its own folder names
// it (the folder's helpers spawn it as often as the test itself does), so a
// filtered run of unit tests does not ask for a browser.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";

/** command (or file) -> Debian package, and how a test file names it. */
export const TOOLS = [
  { cmd: "curl", pkg: "curl", marker: /execFile\("curl"/ },
  { cmd: "openssl", pkg: "openssl", marker: /execFile\("openssl"/ },
  { cmd: "fail2ban-regex", pkg: "fail2ban", marker: /fail2ban/ },
  // The real OpenSSH client (and ssh-keygen) against the SSH tunnel server example.
  { cmd: "ssh", pkg: "openssh-client", marker: /\/usr\/bin\/ssh\b/ },
  { cmd: "promtool", pkg: "prometheus", marker: /promtool/ },
  { file: "/usr/bin/chromium", pkg: "chromium", marker: /\/usr\/bin\/chromium/ },
  { cmd: "systemd-analyze", pkg: "systemd", marker: /systemd-analyze/ },
  // A real nginx as the mask site (and the reference for reject_handshake) in the probe-resistance tests.
  { cmd: "nginx", pkg: "nginx", marker: /spawn\("nginx"/ },
];

/** Needed by the benchmarks only (`npm run bench`), never by a test. */
export const BENCH_TOOLS = [
  { cmd: "iperf3", pkg: "iperf3" },
  { cmd: "haproxy", pkg: "haproxy" },
  { file: "/usr/lib/nginx/modules/ngx_stream_module.so", pkg: "libnginx-mod-stream" },
  { cmd: "redis-benchmark", pkg: "redis-tools" },
];

/** The services' own servers, started throw-away by the test runner when nothing answers. */
export const SERVICE_TOOLS = [
  { cmd: "redis-server", pkg: "redis-server" },
  { dir: "/usr/lib/postgresql", pkg: "postgresql" },
];

function onPath(cmd) {
  return (process.env.PATH ?? "").split(delimiter).some((d) => d && existsSync(join(d, cmd)));
}

function present(t) {
  if (t.dir) return existsSync(t.dir) && readdirSync(t.dir).some((v) => existsSync(join(t.dir, v, "bin", "initdb")));
  return t.file ? existsSync(t.file) : onPath(t.cmd);
}

/** The packages of `tools` that are not installed, without repeats. */
export function missing(tools) {
  return [...new Set(tools.filter((t) => !present(t)).map((t) => t.pkg))];
}

/** The packages the given test files (paths from `root`) need and lack. */
export function missingFor(root, files) {
  const folders = [...new Set(files.map((f) => dirname(join(root, f))))];
  const text = folders
    .flatMap((d) => readdirSync(d).filter((n) => n.endsWith(".ts")).map((n) => readFileSync(join(d, n), "utf8")))
    .join("\n");
  return missing(TOOLS.filter((t) => t.marker.test(text)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(missing([...SERVICE_TOOLS, ...TOOLS, ...BENCH_TOOLS]).join(" "));
}
