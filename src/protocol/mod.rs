//! x402 wire types (v1 and v2), header codecs and reason codes.
