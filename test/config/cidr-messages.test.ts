/**
 * Every configuration section that takes networks refuses the same bad CIDRs
 * with the same message, through the real loader (a file on disk): only the
 * key path differs. A section that reads networks its own way would show here.
 * The library options that take networks throw the same message, naming
 * their option.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfigFile } from "../../src/gateway/config/load.js";
import { DestinationPolicy } from "../../src/features/permissions/destination-policy.js";
import { TrustedProxies } from "../../src/features/http/client-ip.js";
import { cidrProblem } from "../../src/net/cidr.js";
import { signGrant } from "../../src/features/permissions/grant.js";
import { generateSigningKey } from "../../src/features/permissions/signing-keys.js";
import { guardConfigOf } from "../../src/server-guard/options.js";
import { bandwidthConfig } from "../../src/features/bandwidth/bandwidth-config.js";

const BAD = ["10.0.0.0/33", "1.2.3", "::1/129", "10.0.0.0/-1", "abc", "10.0.0.1/8", "10.0.0.0/08", "fe80::%eth0/64", "::ffff:0:0/80"];
const GOOD = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:10.0.0.0/104"];

const LISTENER = '[[listener]]\nname = "egress"\nkind = "connect"\nbind = "127.0.0.1:8080"\n';
const q = (s: string): string => JSON.stringify(s);

/** Each section that takes networks: a file putting `v` there, and the key path the problem must name. */
const SECTIONS: Array<{ name: string; file: (v: string) => string; path: (v: string) => string }> = [
  { name: "guard.allow", file: (v) => `[guard]\nallow = [${q(v)}]\n${LISTENER}`, path: () => "guard.allow[0]" },
  { name: "guard.deny", file: (v) => `[guard]\ndeny = ["10.0.0.0/8", ${q(v)}]\n${LISTENER}`, path: () => "guard.deny[1]" },
  { name: "http.trusted_proxies", file: (v) => `[http]\ntrusted_proxies = [${q(v)}]\n${LISTENER}`, path: () => "http.trusted_proxies[0]" },
  { name: "policy.rule.cidrs", file: (v) => `[[policy.rule]]\nidentities = ["*"]\ncidrs = [${q(v)}]\n${LISTENER}`, path: () => "policy.rule[0].cidrs[0]" },
  {
    name: "listener.policy.allow_special",
    file: (v) => `${LISTENER}policy = { source = "postgres", public_key = "authority.pub.pem", allow_special = [${q(v)}] }\n`,
    path: () => "listener[0].policy.allow_special[0]",
  },
  { name: "bandwidth.overrides", file: (v) => `[bandwidth.overrides]\n${q(v)} = "unlimited"\n${LISTENER}`, path: (v) => `bandwidth.overrides.${v}` },
];

let dir: string;
let n = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "portcullis-cidr-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function problems(text: string): Promise<string[]> {
  const file = join(dir, `c${n++}.toml`);
  await writeFile(file, text);
  const r = loadConfigFile(file, {});
  return r.ok ? [] : r.problems;
}

describe("a bad CIDR reads the same in every section", () => {
  test("the same values are refused with one message, apart from the key path", async () => {
    for (const bad of BAD) {
      const messages = new Map<string, string>();
      for (const s of SECTIONS) {
        // "abc" is an identity in bandwidth.overrides, where keys not written like an address are names.
        if (s.name === "bandwidth.overrides" && bad === "abc") continue;
        const p = await problems(s.file(bad));
        assert.equal(p.length, 1, `${s.name} ${bad}: ${p.join(" | ")}`);
        const prefix = `${s.path(bad)}: `;
        assert.ok(p[0]!.startsWith(prefix), `${s.name}: ${p[0]} names ${prefix}`);
        messages.set(s.name, p[0]!.slice(prefix.length));
      }
      const distinct = new Set(messages.values());
      assert.equal(distinct.size, 1, `${bad}: ${[...messages].map(([k, m]) => `${k} -> ${m}`).join("\n")}`);
      assert.match([...distinct][0]!, /^expected a CIDR block such as "10\.0\.0\.0\/8" or "2001:db8::\/32", or an address, got .+ \(.+\)$/);
    }
  });

  test("the same values are accepted everywhere", async () => {
    for (const good of GOOD) {
      for (const s of SECTIONS) assert.deepEqual(await problems(s.file(good)), [], `${s.name} ${good}`);
    }
  });

  test("in bandwidth.overrides a key not written like an address stays an identity", async () => {
    for (const name of ["abc", "spiffe://enclave/agent-7", "cafe.example"]) {
      assert.deepEqual(await problems(`[bandwidth.overrides]\n${q(name)} = "unlimited"\n${LISTENER}`), [], name);
    }
  });
});

describe("the library options read networks by the same rules", () => {
  const key = generateSigningKey();
  /** Each option that takes networks: a call with `v` there, and the name its error must carry. */
  const OPTIONS: Array<{ name: string; call: (v: string) => unknown; param: (v: string) => string }> = [
    { name: "TrustedProxies", call: (v) => new TrustedProxies(["10.0.0.0/8", v]), param: () => "trustedProxies[1]" },
    { name: "server guard allow", call: (v) => guardConfigOf({ allow: [v] }), param: () => "allow[0]" },
    { name: "server guard deny", call: (v) => guardConfigOf({ deny: [v] }), param: () => "deny[0]" },
    { name: "bandwidth overrides", call: (v) => bandwidthConfig({ overrides: { [v]: "unlimited" } }), param: (v) => `overrides.${v}` },
    {
      name: "destination policy cidrs",
      call: (v) => new DestinationPolicy([{ identities: ["*"], hosts: [], ports: [], cidrs: [v] }]),
      param: () => "policy.rules[0].cidrs[0]",
    },
    {
      name: "signed grant cidr",
      call: (v) => signGrant({ identity: "a", dest: "x.com", ports: "443", cidr: v, notBeforeMs: 0, expiresMs: 1, createdBy: "x", key }),
      param: () => "cidr",
    },
  ];

  test("each refuses the bad values with the loader's message", () => {
    for (const bad of BAD.filter((b) => b !== "abc")) {
      for (const o of OPTIONS) {
        assert.throws(
          () => o.call(bad),
          (e: Error) => e.message === `${o.param(bad)}: ${cidrProblem(bad)}`,
          `${o.name} ${bad}`,
        );
      }
    }
  });

  test("each accepts the good values", () => {
    for (const good of GOOD) for (const o of OPTIONS) assert.doesNotThrow(() => o.call(good), `${o.name} ${good}`);
  });
});
