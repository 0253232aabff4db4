// The official x402 TypeScript SDK against this facilitator (driven by
// tests/x402_sdk.rs, which asserts on the JSON this prints on stdout).
//
//   node sdk_interop.mjs basic|pending
//
// Environment:
//   X402_FACILITATOR_URL  the facilitator (http://127.0.0.1:PORT)
//   X402_SIGNER_URL       the test's signer: POST /pay {requirements} -> {transaction, nonce}
//   X402_PAY_TO           the seller's address (bech32, devnet)
//
// basic:   HTTPFacilitatorClient getSupported / verify / settle with requirements
//          built by x402ResourceServer; then an Express app protected by
//          @x402/express paymentMiddleware, paid through @x402/fetch. The route
//          declares the optional payment-identifier extension: one buyer sends
//          no id (the payload still echoes the declaration), another appends
//          one with the SDK's helper, and its payload is settled again directly.
// pending: requirements asking for 3 confirmations while the test holds the
//          chain still: the SDK client's settle answers settlement_pending and a
//          second settle (same payload) succeeds; then the middleware, whose
//          x402ResourceServer retries a settlement_pending settle once by itself.
// replay:  one payment made for the @x402/express route, then the same
//          PAYMENT-SIGNATURE header sent by 10 concurrent requests: the
//          facilitator delivers the payment's success once, so exactly one
//          request gets the resource.
//
// Progress goes to stderr; the result is one JSON line on stdout.

import { once } from "node:events";

import express from "express";
import { paymentMiddleware } from "@x402/express";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { HTTPFacilitatorClient, x402ResourceServer } from "@x402/core/server";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from "@x402/core/http";
import {
  PAYMENT_IDENTIFIER,
  appendPaymentIdentifierToExtensions,
  declarePaymentIdentifierExtension,
  paymentIdentifierResourceServerExtension,
} from "@x402/extensions/payment-identifier";

import { ExactCardanoClient, ExactCardanoServer, httpSigner } from "./cardano_exact.mjs";

const NETWORK = "cardano:devnet";
const PRICE = { amount: "1000000", asset: "lovelace" };

function need(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set`);
  }
  return v;
}

function log(msg) {
  process.stderr.write(`[sdk_interop] ${msg}\n`);
}

/** The SDK's HTTP facilitator client, with every verify/settle answer kept for the report. */
class RecordingFacilitatorClient extends HTTPFacilitatorClient {
  constructor(config) {
    super(config);
    this.calls = [];
  }
  async verify(paymentPayload, paymentRequirements) {
    try {
      const result = await super.verify(paymentPayload, paymentRequirements);
      this.calls.push({ op: "verify", result });
      return result;
    } catch (e) {
      this.calls.push({ op: "verify", error: String(e?.message ?? e) });
      throw e;
    }
  }
  async settle(paymentPayload, paymentRequirements) {
    try {
      const result = await super.settle(paymentPayload, paymentRequirements);
      this.calls.push({ op: "settle", result });
      return result;
    } catch (e) {
      this.calls.push({ op: "settle", error: String(e?.message ?? e) });
      throw e;
    }
  }
  take() {
    const c = this.calls;
    this.calls = [];
    return c;
  }
}

function option(payTo, l1Confirmations) {
  return {
    scheme: "exact",
    network: NETWORK,
    payTo,
    price: PRICE,
    maxTimeoutSeconds: 600,
    extra: { confirmationPolicy: { l1Confirmations } },
  };
}

/** A buyer; `withPaymentId` adds a payment-identifier id when a server declares the extension. */
function buyer(signerUrl, { withPaymentId = false } = {}) {
  const client = x402Client.fromConfig({
    schemes: [{ network: NETWORK, client: new ExactCardanoClient(httpSigner(signerUrl)) }],
    // lovelace is no SDK default asset: allow it explicitly, capped at 5 ada.
    spendControls: {
      allowedAssets: [{ network: NETWORK, asset: "lovelace", maxAmountPerPayment: "5000000" }],
    },
  });
  if (withPaymentId) {
    client.registerExtension({
      key: PAYMENT_IDENTIFIER,
      enrichPaymentPayload: async (payload) => {
        if (payload.extensions) {
          appendPaymentIdentifierToExtensions(payload.extensions);
        }
        return payload;
      },
    });
  }
  client.created = [];
  client.onAfterPaymentCreation(async (ctx) => {
    client.created.push(ctx.paymentPayload);
  });
  return client;
}

/** Facilitator calls through the SDK's own client, requirements built by the SDK. */
async function direct(facilitator, server, client, payTo, l1Confirmations, label) {
  const [requirements] = await server.buildPaymentRequirements(option(payTo, l1Confirmations));
  const paymentRequired = await server.createPaymentRequiredResponse([requirements], {
    url: `urn:x402-interop:${label}`,
    description: label,
    mimeType: "application/json",
  });
  const payload = await client.createPaymentPayload(paymentRequired);
  return { requirements, payload };
}

async function serveShop(server, payTo, l1Confirmations, extensions) {
  const app = express();
  app.use(
    paymentMiddleware(
      {
        "GET /weather": {
          accepts: option(payTo, l1Confirmations),
          description: "Weather, paid in ada",
          mimeType: "application/json",
          ...(extensions ? { extensions } : {}),
        },
      },
      server,
    ),
  );
  app.get("/weather", (_req, res) => {
    res.json({ forecast: "sunny", temperatureC: 21 });
  });
  const listener = app.listen(0, "127.0.0.1");
  await once(listener, "listening");
  const { port } = listener.address();
  return { listener, url: `http://127.0.0.1:${port}/weather` };
}

async function paidRequest(url, client) {
  const unpaid = await fetch(url);
  const requiredHeader = unpaid.headers.get("PAYMENT-REQUIRED");
  await unpaid.text();
  const payFetch = wrapFetchWithPayment(fetch, client);
  const paid = await payFetch(url);
  const responseHeader = paid.headers.get("PAYMENT-RESPONSE");
  const text = await paid.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return {
    unpaid: {
      status: unpaid.status,
      paymentRequired: requiredHeader ? decodePaymentRequiredHeader(requiredHeader) : null,
    },
    paid: {
      status: paid.status,
      body,
      paymentResponse: responseHeader ? decodePaymentResponseHeader(responseHeader) : null,
    },
  };
}

async function main() {
  const mode = process.argv[2];
  const facilitatorUrl = need("X402_FACILITATOR_URL");
  const signerUrl = need("X402_SIGNER_URL");
  const payTo = need("X402_PAY_TO");

  const facilitator = new RecordingFacilitatorClient({ url: facilitatorUrl, timeoutMs: 20_000 });
  const server = new x402ResourceServer(facilitator).register(NETWORK, new ExactCardanoServer());
  await server.initialize();
  const client = buyer(signerUrl);
  const out = { mode };

  if (mode === "basic") {
    out.supported = await facilitator.getSupported();
    out.supportedKind = server.getSupportedKind(2, NETWORK, "exact") ?? null;
    out.facilitatorExtensions = server.getFacilitatorExtensions(2, NETWORK, "exact");
    log(`supported: ${JSON.stringify(out.supported.kinds)}`);

    const { requirements, payload } = await direct(facilitator, server, client, payTo, 1, "direct");
    out.direct = {
      requirements,
      payload,
      verify: await facilitator.verify(payload, requirements),
      settle: await facilitator.settle(payload, requirements),
    };
    facilitator.take();
    log(`direct verify ${JSON.stringify(out.direct.verify)} settle ${JSON.stringify(out.direct.settle)}`);

    server.registerExtension(paymentIdentifierResourceServerExtension);
    const shop = await serveShop(server, payTo, 1, {
      [PAYMENT_IDENTIFIER]: declarePaymentIdentifierExtension(false),
    });
    try {
      out.middleware = await paidRequest(shop.url, client);
      out.middleware.facilitatorCalls = facilitator.take();
      out.middleware.payload = client.created.at(-1);
      log(`middleware (no payment id) paid ${out.middleware.paid.status}`);

      const idClient = buyer(signerUrl, { withPaymentId: true });
      out.withPaymentId = await paidRequest(shop.url, idClient);
      out.withPaymentId.facilitatorCalls = facilitator.take();
      const payload = idClient.created.at(-1);
      out.withPaymentId.payload = payload;
      // The same payment settled again: the facilitator answers from its idempotency record.
      out.withPaymentId.replay = await facilitator.settle(payload, payload.accepted);
      facilitator.take();
      log(`middleware (payment id) paid ${out.withPaymentId.paid.status}`);
    } finally {
      shop.listener.close();
    }
  } else if (mode === "pending") {
    // The SDK's client does not retry by itself: call settle again with the same payload.
    const { requirements, payload } = await direct(facilitator, server, client, payTo, 3, "pending");
    const first = await facilitator.settle(payload, requirements);
    log(`direct settle #1 ${JSON.stringify(first)}`);
    const second = await facilitator.settle(payload, requirements);
    log(`direct settle #2 ${JSON.stringify(second)}`);
    facilitator.take();
    out.direct = { requirements, payload, settles: [first, second] };

    // The middleware's x402ResourceServer retries a settlement_pending answer once.
    const shop = await serveShop(server, payTo, 3);
    try {
      out.middleware = await paidRequest(shop.url, client);
    } finally {
      shop.listener.close();
    }
    out.middleware.facilitatorCalls = facilitator.take();
    log(`middleware paid ${out.middleware.paid.status}`);
  } else if (mode === "replay") {
    const shop = await serveShop(server, payTo, 0);
    try {
      const unpaid = await fetch(shop.url);
      const required = decodePaymentRequiredHeader(unpaid.headers.get("PAYMENT-REQUIRED"));
      await unpaid.text();
      const payload = await client.createPaymentPayload(required);
      const header = encodePaymentSignatureHeader(payload);
      const answers = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const r = await fetch(shop.url, { headers: { "PAYMENT-SIGNATURE": header } });
          const text = await r.text();
          return { status: r.status, body: text.slice(0, 200) };
        }),
      );
      out.replay = { statuses: answers.map((a) => a.status), answers };
      log(`replay statuses ${JSON.stringify(out.replay.statuses)}`);
    } finally {
      shop.listener.close();
    }
    out.replay.facilitatorCalls = facilitator.take();
  } else {
    throw new Error(`unknown mode ${mode}: expected basic, pending or replay`);
  }

  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`[sdk_interop] FAILED: ${e?.stack ?? e}\n`);
    process.exit(1);
  },
);
