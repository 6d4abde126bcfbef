"""The clearing house: an append-only, publicly verifiable log of contract and transfer events.

Layers (see README.md in this directory):

* pure: :mod:`.entry` (entry schema, canonical bytes, ES256 compact JWS), :mod:`.verify`
  (receipts, listed entries, consistency, audit state), on top of :mod:`connector.ledger`;
* shell: :mod:`.store` (tables, group-committed appends, proofs from stored nodes),
  :mod:`.app` (aiohttp service), :mod:`.keys` (participants' public keys),
  :mod:`.client` (what a node uses), :mod:`.audit` and :mod:`.cli`.
"""
