// A minimal Cardano `exact` scheme for the official x402 TypeScript SDK.
//
// The SDK ships EVM and SVM schemes only. It takes any object implementing
// its `SchemeNetworkServer` (resource server side) and `SchemeNetworkClient`
// (buyer side) interfaces; these two are the smallest that satisfy them for
// `exact` on Cardano. Transport, headers, middleware, requirement matching
// and the facilitator client all stay the SDK's own.
//
// Signing is not done here: the buyer side hands the PaymentRequirements to
// a `sign(requirements)` callback that returns `{transaction, nonce}` (the
// interop test answers it from Rust with a real signed transaction).

export const SCHEME = "exact";

/** Largest l1Confirmations a facilitator may advertise by default (x402-cardano). */
const DEFAULT_CONFIRMATION_BOUNDS = { minimum: -1, maximum: 20 };

const ASSET_RE = /^(lovelace|[0-9a-f]{56}\.[0-9a-f]{0,64})$/;

/** Resource server side: turns a route's price into Cardano requirements. */
export class ExactCardanoServer {
  constructor() {
    this.scheme = SCHEME;
    // Cardano `exact` has one way to move the asset: a plain output to payTo.
    this.defaultAssetTransferMethod = "default";
    // Verify before the handler, settle after it (the SDK's "authorization" flow).
    this.paymentFlows = {
      default: { supported: ["authorization"], default: "authorization" },
    };
  }

  /**
   * Prices are atomic amounts: `{amount, asset}` (asset `lovelace` or
   * `<policy hex>.<name hex>`), or a bare integer / "N" meaning lovelace.
   * Dollar strings are refused: there is no default stablecoin table here.
   */
  async parsePrice(price, _network) {
    if (price !== null && typeof price === "object") {
      const amount = String(price.amount);
      const asset = price.asset ?? "lovelace";
      if (!/^[1-9][0-9]*$/.test(amount)) {
        throw new Error(`cardano exact: amount must be a positive integer string, got ${amount}`);
      }
      if (!ASSET_RE.test(asset)) {
        throw new Error(`cardano exact: asset must be lovelace or <policy>.<name> hex, got ${asset}`);
      }
      return { amount, asset, ...(price.extra ? { extra: price.extra } : {}) };
    }
    const text = String(price).trim();
    if (/^[1-9][0-9]*$/.test(text)) {
      return { amount: text, asset: "lovelace" };
    }
    throw new Error(`cardano exact: unsupported price ${JSON.stringify(price)} (use {amount, asset})`);
  }

  getAssetDecimals(asset, _network) {
    return asset === "lovelace" ? 6 : undefined;
  }

  /**
   * Checks the confirmation policy against what the facilitator advertises
   * (`/supported` kind `extra.l1Confirmations`); otherwise the requirements
   * go out as built.
   */
  async enhancePaymentRequirements(requirements, supportedKind, _facilitatorExtensions) {
    const wanted = requirements.extra?.confirmationPolicy?.l1Confirmations;
    if (wanted !== undefined) {
      const bounds = supportedKind.extra?.l1Confirmations ?? DEFAULT_CONFIRMATION_BOUNDS;
      if (!Number.isInteger(wanted) || wanted < bounds.minimum || wanted > bounds.maximum) {
        throw new Error(
          `cardano exact: l1Confirmations ${wanted} outside the facilitator's [${bounds.minimum}, ${bounds.maximum}]`,
        );
      }
    }
    return requirements;
  }

  validateFacilitatorSupport(_network, supportedKind, _facilitatorExtensions) {
    const methods = supportedKind.extra?.assetTransferMethods;
    if (Array.isArray(methods) && !methods.includes("default")) {
      return `facilitator does not offer the default asset transfer method (offers ${methods.join(", ")})`;
    }
    return undefined;
  }
}

/** Buyer side: asks `sign` for the signed transaction paying `requirements`. */
export class ExactCardanoClient {
  /** @param {(requirements: object) => Promise<{transaction: string, nonce: string}>} sign */
  constructor(sign) {
    this.scheme = SCHEME;
    this.sign = sign;
  }

  async createPaymentPayload(x402Version, requirements, context) {
    const cap = context?.maxAmountPerPayment;
    if (cap !== undefined && BigInt(requirements.amount) > BigInt(cap)) {
      throw new Error(`cardano exact: amount ${requirements.amount} exceeds the spend cap ${cap}`);
    }
    const { transaction, nonce } = await this.sign(requirements);
    if (typeof transaction !== "string" || typeof nonce !== "string") {
      throw new Error("cardano exact: signer must return {transaction, nonce} strings");
    }
    return { x402Version, payload: { transaction, nonce } };
  }
}

/** A `sign` callback that POSTs the requirements to `${url}/pay`. */
export function httpSigner(url) {
  return async (requirements) => {
    const response = await fetch(`${url.replace(/\/+$/, "")}/pay`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ requirements }),
    });
    const text = await response.text();
    if (!response.ok) {
      throw new Error(`signer answered ${response.status}: ${text}`);
    }
    return JSON.parse(text);
  };
}
