// Validates REAL answers of the devnet's Blockfrost-compatible API against
// Blockfrost's official OpenAPI schemas (npm @blockfrost/openapi).
//
// usage: node openapi-conformance.mjs <devnet base url> <fixture json>
//   base url: e.g. http://127.0.0.1:PORT/devnet (the API is at <base>/api/v0)
//   fixture:  {"address", "unusedAddress", "unit", "blockHash", "confirmedTx", "mempoolTx", "submitCbor"}
//             prepared by the Rust test (tests/it/devnet_api.rs).
//
// For every endpoint the schema is the one Blockfrost's own helper
// (getSchemaForEndpoint) derives for that path and status code; Ajv checks
// required fields and JSON types (nullable included). Exit code 0 only when
// every answer conforms.

import Ajv from "ajv";
import openapi from "@blockfrost/openapi";

const { getSchemaForEndpoint } = openapi;
const [base, fixtureText] = process.argv.slice(2);
if (!base || !fixtureText) {
  console.error("usage: node openapi-conformance.mjs <base url> <fixture json>");
  process.exit(2);
}
const fx = JSON.parse(fixtureText);
const api = `${base}/api/v0`;
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });

// [label, spec path, url path, expected status, request options]
const cases = [
  ["root", "/", "/", 200],
  ["health", "/health", "/health", 200],
  ["genesis", "/genesis", "/genesis", 200],
  ["latest epoch", "/epochs/latest", "/epochs/latest", 200],
  ["latest epoch parameters", "/epochs/latest/parameters", "/epochs/latest/parameters", 200],
  ["latest block", "/blocks/latest", "/blocks/latest", 200],
  ["block by height", "/blocks/{hash_or_number}", "/blocks/1", 200],
  ["block by hash", "/blocks/{hash_or_number}", `/blocks/${fx.blockHash}`, 200],
  ["block, unknown height", "/blocks/{hash_or_number}", "/blocks/99999999", 404],
  ["block, malformed id", "/blocks/{hash_or_number}", "/blocks/not-a-block", 400],
  ["address utxos", "/addresses/{address}/utxos", `/addresses/${fx.address}/utxos`, 200],
  ["address utxos, page 2 of 1", "/addresses/{address}/utxos", `/addresses/${fx.address}/utxos?count=1&page=2&order=desc`, 200],
  ["address utxos, never used", "/addresses/{address}/utxos", `/addresses/${fx.unusedAddress}/utxos`, 404],
  ["address utxos, count too large", "/addresses/{address}/utxos", `/addresses/${fx.address}/utxos?count=101`, 400],
  ["address utxos, malformed address", "/addresses/{address}/utxos", `/addresses/addr_test1qqqq/utxos`, 400],
  ["address utxos with asset", "/addresses/{address}/utxos/{asset}", `/addresses/${fx.address}/utxos/${fx.unit}`, 200],
  ["address utxos with asset, never used", "/addresses/{address}/utxos/{asset}", `/addresses/${fx.unusedAddress}/utxos/${fx.unit}`, 404],
  ["address utxos with asset, malformed asset", "/addresses/{address}/utxos/{asset}", `/addresses/${fx.address}/utxos/zz`, 400],
  ["tx", "/txs/{hash}", `/txs/${fx.confirmedTx}`, 200],
  ["tx, unknown", "/txs/{hash}", `/txs/${"0".repeat(64)}`, 404],
  ["tx, malformed hash", "/txs/{hash}", `/txs/xyz`, 400],
  ["tx utxos", "/txs/{hash}/utxos", `/txs/${fx.confirmedTx}/utxos`, 200],
  ["tx utxos, unknown", "/txs/{hash}/utxos", `/txs/${"0".repeat(64)}/utxos`, 404],
  ["tx cbor", "/txs/{hash}/cbor", `/txs/${fx.confirmedTx}/cbor`, 200],
  ["mempool tx", "/mempool/{hash}", `/mempool/${fx.mempoolTx}`, 200],
  ["mempool tx, unknown", "/mempool/{hash}", `/mempool/${"0".repeat(64)}`, 404],
  ["submit", "/tx/submit", "/tx/submit", 200, { method: "POST", headers: { "Content-Type": "application/cbor" }, body: Buffer.from(fx.submitCbor, "hex") }],
  ["submit, double spend", "/tx/submit", "/tx/submit", 400, { method: "POST", headers: { "Content-Type": "application/cbor" }, body: Buffer.from(fx.submitCbor, "hex") }],
  ["submit, not cbor", "/tx/submit", "/tx/submit", 400, { method: "POST", headers: { "Content-Type": "application/cbor" }, body: Buffer.from("garbage") }],
];

// Proof that validation is not vacuous: the same answer with its first
// required field removed (in the top object, or in the first array item)
// must be rejected.
function canaryFails(schema, body) {
  const target = Array.isArray(body) ? (body.length > 0 ? { holder: body, schema: schema.items } : null) : { holder: [body], schema };
  if (!target || !target.schema || !Array.isArray(target.schema.required) || target.schema.required.length === 0) return true;
  const copy = structuredClone(target.holder[0]);
  delete copy[target.schema.required[0]];
  return !ajv.validate(target.schema, copy);
}

let passed = 0;
let failed = 0;
for (const [label, specPath, urlPath, status, init] of cases) {
  const problems = [];
  let body;
  try {
    const res = await fetch(api + urlPath, init);
    const text = await res.text();
    if (res.status !== status) problems.push(`status ${res.status}, expected ${status}: ${text.slice(0, 300)}`);
    if (!(res.headers.get("content-type") || "").startsWith("application/json")) problems.push(`content-type ${res.headers.get("content-type")}`);
    body = JSON.parse(text);
    const schema = getSchemaForEndpoint(specPath).response[String(status)];
    if (!schema) problems.push(`the spec defines no ${status} answer for ${specPath}`);
    else if (JSON.stringify(schema).includes("$ref")) problems.push("unresolved $ref in the schema");
    else if (!ajv.validate(schema, body)) problems.push(ajv.errorsText(ajv.errors, { separator: "; " }));
    else if (!canaryFails(schema, body)) problems.push("the schema accepted a copy missing a required field: validation is vacuous");
  } catch (e) {
    problems.push(String(e));
  }
  if (problems.length === 0) {
    passed++;
    console.log(`ok   ${label} (${specPath} ${status})`);
  } else {
    failed++;
    console.log(`FAIL ${label} (${specPath} ${status}): ${problems.join(" | ")}`);
  }
}
console.log(`openapi: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
