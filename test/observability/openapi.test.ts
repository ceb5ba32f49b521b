/**
 * The admin API's OpenAPI document, as served, is a valid OpenAPI 3.1
 * document (checked by a validator against the specification's schema), and
 * every response of every operation has its required description.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import SwaggerParser from "@apidevtools/swagger-parser";
import { openApiDocument } from "../../src/admin/openapi.js";
import { connectDoc } from "../gateway/fixtures.js";
import { startObserved } from "./fixtures.js";

type Doc = { paths: Record<string, Record<string, { responses: Record<string, Record<string, unknown>> }>> };

test("the served document passes OpenAPI 3.1 validation", async () => {
  const o = await startObserved(await connectDoc(), { processMetrics: false });
  try {
    const r = await o.call("GET", "/v1/openapi.json", { token: null });
    assert.equal(r.status, 200);
    // validate() resolves $refs in place: give it a copy.
    await SwaggerParser.validate(structuredClone(r.json) as never);
  } finally {
    await o.stop();
  }
});

test("every response of every operation has a description", () => {
  const doc = openApiDocument() as Doc;
  const missing: string[] = [];
  let responses = 0;
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      for (const [status, response] of Object.entries(op.responses)) {
        responses++;
        if (typeof response.description !== "string" || response.description.length === 0) missing.push(`${method.toUpperCase()} ${path} ${status}`);
      }
    }
  }
  assert.ok(responses > 20, `only ${responses} responses found`);
  assert.deepEqual(missing, []);
});

test("the validator refuses a response without a description", async () => {
  const doc = structuredClone(openApiDocument()) as Doc;
  delete doc.paths["/healthz"]!.get!.responses["200"]!.description;
  await assert.rejects(SwaggerParser.validate(doc as never));
});
