"""Schemathesis hooks for scripts/schemathesis.sh.

`POST /devnet/api/v0/tx/submit` takes raw transaction bytes as
`application/cbor`, a media type schemathesis has no serializer for: send
generated bodies as opaque bytes, the way `application/octet-stream` is sent.
"""

import schemathesis

schemathesis.serializer.alias("application/cbor", "application/octet-stream")
