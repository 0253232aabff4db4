// A payment made end to end by a Cardano library this project did not write:
// lucid-evolution, through its own Blockfrost provider, against the devnet's
// Blockfrost-compatible API.
//
// usage: node lucid-payment.mjs <devnet base url>
//   base url: e.g. http://127.0.0.1:PORT/devnet
//
// Steps: fund a fresh lucid wallet with the devnet faucet; let lucid read the
// protocol parameters and the wallet's UTxOs; build, balance, sign and submit
// a 3 ada payment; wait (bounded) until /txs/{hash} finds it in a block; check
// the recipient's UTxOs through lucid. The last stdout line is JSON for the
// Rust test: {"txHash", "blockHeight", "recipient", "fee"}.

import { createRequire } from "node:module";

// Loaded through CommonJS: the ESM build of one of lucid's dependencies
// (libsodium-wrappers-sumo) points at a file its package does not ship.
const require = createRequire(import.meta.url);
const { Lucid, Blockfrost, generatePrivateKey } = require("@lucid-evolution/lucid");

const base = process.argv[2];
if (!base) {
  console.error("usage: node lucid-payment.mjs <devnet base url>");
  process.exit(2);
}
const api = `${base}/api/v0`;

async function post(url, json) {
  const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(json) });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

// "Preprod": network id 0 addresses (addr_test), like the devnet.
const lucid = await Lucid(new Blockfrost(api, "devnet"), "Preprod");
lucid.selectWallet.fromPrivateKey(generatePrivateKey());
const sender = await lucid.wallet().address();
const recipientLucid = await Lucid(new Blockfrost(api, "devnet"), "Preprod");
recipientLucid.selectWallet.fromPrivateKey(generatePrivateKey());
const recipient = await recipientLucid.wallet().address();

const funded = await post(`${base}/faucet`, { address: sender, lovelace: "20000000" });
console.error(`funded ${sender} with ${funded.txHash}#${funded.outputIndex}`);

const utxos = await lucid.wallet().getUtxos();
if (utxos.length !== 1 || utxos[0].assets.lovelace !== 20_000_000n || utxos[0].txHash !== funded.txHash) {
  throw new Error(`unexpected wallet UTxOs: ${JSON.stringify(utxos, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`);
}
if ((await recipientLucid.wallet().getUtxos()).length !== 0) throw new Error("a fresh address should have no UTxOs");

const tx = await lucid.newTx().pay.ToAddress(recipient, { lovelace: 3_000_000n }).complete();
const fee = tx.toTransaction().body().fee();
const signed = await tx.sign.withWallet().complete();
const txHash = await signed.submit();
console.error(`submitted ${txHash} (fee ${fee})`);

let blockHeight = null;
const deadline = Date.now() + 20_000;
while (Date.now() < deadline) {
  const res = await fetch(`${api}/txs/${txHash}`);
  if (res.status === 200) {
    blockHeight = (await res.json()).block_height;
    break;
  }
  if (res.status !== 404) throw new Error(`/txs/${txHash}: ${res.status} ${await res.text()}`);
  await new Promise((r) => setTimeout(r, 100));
}
if (blockHeight === null) throw new Error(`${txHash} not in a block within 20 s`);

const received = await lucid.utxosAt(recipient);
if (received.length !== 1 || received[0].assets.lovelace !== 3_000_000n || received[0].txHash !== txHash) {
  throw new Error(`recipient UTxOs: ${JSON.stringify(received, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`);
}
const change = await lucid.wallet().getUtxos();
if (change.length !== 1 || change[0].assets.lovelace !== 20_000_000n - 3_000_000n - fee) {
  throw new Error("sender change does not add up");
}
console.log(JSON.stringify({ txHash, blockHeight, recipient, fee: fee.toString() }));
process.exit(0);
