import assert from "node:assert/strict";
import crypto from "node:crypto";
import { syncBuiltinESMExports } from "node:module";
import { describe, test } from "node:test";
import { parseProxyAuthorization, UserTable } from "../../../src/gateway/identity/basic-auth.js";
import { hashPassword, isPasswordHash, parsePasswordHash, verifyPassword } from "../../../src/gateway/identity/passwords.js";

// Cheap parameters where cost is not what is tested.
const FAST = { N: 1024, r: 8, p: 1 };

describe("password hashes", () => {
  test("default hashes are self-describing scrypt with a random salt", async () => {
    const a = await hashPassword("correct horse");
    const b = await hashPassword("correct horse");
    assert.match(a, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.notEqual(a, b);
    assert.equal(await verifyPassword("correct horse", a), true);
    assert.equal(await verifyPassword("correct horse", b), true);
    assert.equal(await verifyPassword("correct horsf", a), false);
    assert.equal(await verifyPassword("", a), false);
  });

  test("the parameters in the encoding are the ones used", async () => {
    const h = await hashPassword("pw", FAST);
    assert.ok(h.startsWith("scrypt$1024$8$1$"));
    assert.equal(await verifyPassword("pw", h), true);
    // Same salt and hash under other parameters no longer verifies.
    assert.equal(await verifyPassword("pw", h.replace("scrypt$1024$", "scrypt$2048$")), false);
    assert.deepEqual(parsePasswordHash(h)?.params, FAST);
  });

  test("unicode passwords", async () => {
    const h = await hashPassword("пароль🔑", FAST);
    assert.equal(await verifyPassword("пароль🔑", h), true);
    assert.equal(await verifyPassword("пароль", h), false);
  });

  test("malformed or hostile encodings verify false, without throwing", async () => {
    const good = await hashPassword("pw", FAST);
    const [, , , , salt, hash] = good.split("$");
    const bad = [
      "",
      "pw",
      "bcrypt$10$abc",
      good.replace("scrypt$", "SCRYPT$"),
      `scrypt$1000$8$1$${salt}$${hash}`, // N not a power of two
      `scrypt$1073741824$8$1$${salt}$${hash}`, // N far too big to be allowed to run
      `scrypt$1048576$32$16$${salt}$${hash}`, // memory bound
      `scrypt$1024$0$1$${salt}$${hash}`,
      `scrypt$01024$8$1$${salt}$${hash}`,
      `scrypt$1024$8$1$${salt}==$${hash}`,
      `scrypt$1024$8$1$${salt}$${hash}$extra`,
      `scrypt$1024$8$1$$${hash}`,
      `scrypt$1024$8$1$${salt}$${hash!.slice(0, 10)}`,
      `scrypt$1024$8$1$${salt}$${hash!.slice(0, -1)}!`,
      good + "x".repeat(600),
    ];
    for (const b of bad) {
      assert.equal(isPasswordHash(b), false, b);
      assert.equal(await verifyPassword("pw", b), false, b);
    }
    assert.equal(await verifyPassword(undefined as never, good), false);
  });
});

describe("Proxy-Authorization: Basic", () => {
  const basic = (s: string, scheme = "Basic"): string => `${scheme} ${Buffer.from(s, "utf8").toString("base64")}`;

  test("well-formed credentials", () => {
    assert.deepEqual(parseProxyAuthorization(basic("alice:s3cret")), { user: "alice", password: "s3cret" });
    assert.deepEqual(parseProxyAuthorization(basic("alice:pa:ss", "bAsIc")), { user: "alice", password: "pa:ss" });
    assert.deepEqual(parseProxyAuthorization(basic("alice:")), { user: "alice", password: "" });
    assert.deepEqual(parseProxyAuthorization(basic("zoë:пароль")), { user: "zoë", password: "пароль" });
    assert.deepEqual(parseProxyAuthorization(`  ${basic("a:b")}  `), { user: "a", password: "b" });
  });

  test("anything else is refused", () => {
    const b64 = (s: string): string => Buffer.from(s).toString("base64");
    const bad = [
      undefined,
      "",
      "Basic",
      "Basic ",
      `Bearer ${b64("a:b")}`,
      `Basic${b64("a:b")}`,
      basic("nocolon"),
      basic(":password"),
      basic("al\nice:pw"),
      basic("alice:p\u0000w"),
      `Basic ${b64("a:b")}x`, // not a multiple of 4
      `Basic ${b64("a:bc").replace(/=+$/, "")}`, // padding missing
      "Basic YQ==:", // not base64
      "Basic YR==", // non-canonical: stray bits
      `Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString("base64")}`, // not UTF-8
      `Basic ${b64("a:b")} ${b64("c:d")}`,
      basic("a:" + "x".repeat(5000)),
    ];
    for (const h of bad) assert.equal(parseProxyAuthorization(h), undefined, String(h));
  });
});

describe("UserTable", () => {
  test("verifies known users and refuses the rest", async () => {
    const table = new UserTable({ alice: await hashPassword("wonderland", FAST), bob: await hashPassword("builder", FAST) });
    assert.equal(await table.verify("alice", "wonderland"), true);
    assert.equal(await table.verify("bob", "builder"), true);
    assert.equal(await table.verify("alice", "builder"), false);
    assert.equal(await table.verify("mallory", "wonderland"), false);
    assert.equal(await table.verify("__proto__", "x"), false);
    assert.equal(await table.verify("constructor", "x"), false);
  });

  test("a malformed hash is a configuration error naming the user", () => {
    assert.throws(() => new UserTable({ alice: "plaintext" }), /users\.alice/);
  });

  test("an unknown user costs as much as a known one: the same single scrypt run, same parameters", async () => {
    const params = { N: 1 << 14, r: 8, p: 1 };
    const table = new UserTable({ alice: await hashPassword("wonderland", params) });
    await table.verify("nobody", "guess"); // the dummy hash is ready before the first count
    // Counts the real scrypt runs (each still runs): the work done, which a loaded machine cannot blur
    // the way it blurs a measured duration.
    const runs: string[] = [];
    const original = crypto.scrypt;
    crypto.scrypt = ((...args: Parameters<typeof crypto.scrypt>) => {
      const [, salt, keylen, o] = args as unknown as [unknown, Buffer, number, crypto.ScryptOptions];
      runs.push(`N=${o.N} r=${o.r} p=${o.p} salt=${salt.length} keylen=${keylen}`);
      return (original as (...a: unknown[]) => void)(...args);
    }) as typeof crypto.scrypt;
    syncBuiltinESMExports();
    const work = async (user: string): Promise<string[]> => {
      runs.length = 0;
      await table.verify(user, "guess");
      return [...runs];
    };
    try {
      const known = await work("alice");
      const unknown = await work("nobody");
      assert.deepEqual(known, [`N=16384 r=8 p=1 salt=16 keylen=32`], "a known user costs one scrypt run at the table's parameters");
      assert.deepEqual(unknown, known, "an unknown user costs the same run");
    } finally {
      crypto.scrypt = original;
      syncBuiltinESMExports();
    }
  });
});
