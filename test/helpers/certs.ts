/**
 * A throw-away PKI made with the real openssl CLI: a CA, a server certificate
 * for localhost / 127.0.0.1 / ::1, and client certificates on demand with a
 * chosen CN, SAN URI and custom extension. Keys are P-256 (fast to make).
 * Everything is returned both as PEM text and as file paths in `dir`.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** How a custom extension's value is encoded in the certificate. */
export type CustomOidEncoding = "utf8" | "ia5" | "printable" | "octet" | "raw";

export interface ClientCertOptions {
  /** Subject CN; without it the subject has only an O. */
  cn?: string;
  /** A URI subjectAltName, e.g. "spiffe://enclave/agent-7". */
  sanUri?: string;
  /**
   * A custom, non-critical extension. `encoding` (default "utf8") picks the
   * ASN.1 type of the value: UTF8String, IA5String, PrintableString, an
   * OCTET STRING, or "raw" (the extension value is the bytes themselves, not DER).
   */
  customOid?: { oid: string; value: string; encoding?: CustomOidEncoding };
  /** Days of validity (default 2). */
  days?: number;
}

export interface IssuedCert {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}

export interface TestPki {
  dir: string;
  caCert: string;
  caKey: string;
  caCertPath: string;
  caKeyPath: string;
  serverCert: string;
  serverKey: string;
  serverCertPath: string;
  serverKeyPath: string;
  clientCert(opts: ClientCertOptions): Promise<IssuedCert>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run("openssl", args, { cwd, timeout: 20_000 });
}

/** Escapes a value for an -subj component. */
function subjValue(s: string): string {
  return s.replace(/[\\/+=]/g, (c) => `\\${c}`);
}

/** Escapes a value for an openssl config file line. */
function confValue(s: string): string {
  if (/[\r\n]/.test(s)) throw new Error("certificate option values must be one line");
  return s.replace(/[\\$#"]/g, (c) => `\\${c}`);
}

const ASN1_TYPE: Record<Exclude<CustomOidEncoding, "raw">, string> = {
  utf8: "UTF8String",
  ia5: "IA5String",
  printable: "PrintableString",
  octet: "OCTETSTRING",
};

function customExtLine(o: NonNullable<ClientCertOptions["customOid"]>): string {
  if (!/^[0-9]+(\.[0-9]+)+$/.test(o.oid)) throw new Error(`not an OID: ${o.oid}`);
  const enc = o.encoding ?? "utf8";
  if (enc === "raw") return `${o.oid} = DER:${Buffer.from(o.value, "utf8").toString("hex")}`;
  if (enc === "octet") return `${o.oid} = ASN1:FORMAT:HEX,OCTETSTRING:${Buffer.from(o.value, "utf8").toString("hex")}`;
  return `${o.oid} = ASN1:${ASN1_TYPE[enc]}:${confValue(o.value)}`;
}

async function issue(
  dir: string,
  name: string,
  subject: string,
  extLines: string[],
  days: number,
): Promise<IssuedCert> {
  const keyPath = join(dir, `${name}.key`);
  const csrPath = join(dir, `${name}.csr`);
  const certPath = join(dir, `${name}.crt`);
  const extPath = join(dir, `${name}.ext`);
  await writeFile(extPath, ["[v3]", ...extLines, ""].join("\n"));
  await openssl(
    ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-utf8", "-keyout", keyPath, "-out", csrPath, "-subj", subject],
    dir,
  );
  await openssl(
    [
      "x509", "-req", "-in", csrPath, "-CA", join(dir, "ca.crt"), "-CAkey", join(dir, "ca.key"),
      "-set_serial", `0x${randomBytes(8).toString("hex")}`, "-days", String(days), "-sha256",
      "-extfile", extPath, "-extensions", "v3", "-out", certPath,
    ],
    dir,
  );
  return { cert: await readFile(certPath, "utf8"), key: await readFile(keyPath, "utf8"), certPath, keyPath };
}

/** Makes a CA and a server certificate in `dir` (a new temporary directory by default). */
export async function makeTestPki(dir?: string): Promise<TestPki> {
  const root = dir ?? (await mkdtemp(join(tmpdir(), "portcullis-pki-")));
  const caKeyPath = join(root, "ca.key");
  const caCertPath = join(root, "ca.crt");
  await openssl(
    [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", caKeyPath,
      "-out", caCertPath, "-subj", "/O=Portcullis Test/CN=Portcullis Test CA", "-days", "2", "-sha256",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ],
    root,
  );
  const server = await issue(
    root,
    "server",
    "/O=Portcullis Test/CN=localhost",
    [
      "basicConstraints = CA:FALSE",
      "keyUsage = critical, digitalSignature, keyEncipherment",
      "extendedKeyUsage = serverAuth",
      "subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1",
    ],
    2,
  );
  let n = 0;
  return {
    dir: root,
    caCert: await readFile(caCertPath, "utf8"),
    caKey: await readFile(caKeyPath, "utf8"),
    caCertPath,
    caKeyPath,
    serverCert: server.cert,
    serverKey: server.key,
    serverCertPath: server.certPath,
    serverKeyPath: server.keyPath,
    clientCert(opts: ClientCertOptions): Promise<IssuedCert> {
      n += 1;
      const subject = `/O=Portcullis Test${opts.cn === undefined ? "" : `/CN=${subjValue(opts.cn)}`}`;
      const ext = [
        "basicConstraints = CA:FALSE",
        "keyUsage = critical, digitalSignature, keyEncipherment",
        "extendedKeyUsage = clientAuth",
      ];
      if (opts.sanUri !== undefined) ext.push(`subjectAltName = URI:${confValue(opts.sanUri)}`);
      if (opts.customOid !== undefined) ext.push(customExtLine(opts.customOid));
      return issue(root, `client-${n}`, subject, ext, opts.days ?? 2);
    },
  };
}
