#!/usr/bin/env python3
"""A devnet configuration with N funded genesis outputs, one per distinct
enterprise address (network id 0, 10 ada each), for the memory figure of
BENCHMARKS.md (issue 15, point 4):

    python3 scripts/gen-genesis.py 100000   # writes genesis-100000.json here
    X402_SERVER__PORT=0 target/release/x402-facilitator serve --config genesis-100000.json

Each address is the bech32 (BIP-173) text of header byte 0x60 followed by a
Blake2b-224 digest of the output's index."""
import hashlib
import json
import sys

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
GENERATOR = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]


def polymod(values):
    check = 1
    for v in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                check ^= GENERATOR[i]
    return check


def to_five_bits(data):
    acc, bits, out = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def bech32(hrp, data):
    words = to_five_bits(data)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    check = polymod(expanded + words + [0] * 6) ^ 1
    words += [(check >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[w] for w in words)


def main():
    n = int(sys.argv[1])
    outputs = [
        {
            "address": bech32(
                "addr_test",
                bytes([0x60]) + hashlib.blake2b(i.to_bytes(8, "big"), digest_size=28).digest(),
            ),
            "lovelace": "10000000",
        }
        for i in range(n)
    ]
    with open(f"genesis-{n}.json", "w") as f:
        json.dump({"chain": {"devnet": {"genesis": outputs}}}, f)


if __name__ == "__main__":
    main()
