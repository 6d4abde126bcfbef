"""Dataset registration certificates ("confirmable" data, issue 14 item 6).

* `certificate` — pure: the certificate's claims, the bundle a node advertises, and its offline
  verification (station signature, clearing-house inclusion proof, revocation list, data digest);
* `station` — the station's registration requests, operator review, issuance and revocation;
* `station_log` — the station's clearing-house identity and the outbox it logs its certificates from;
* `node` — the node's side: digest, request, check the station's log entry and proof, advertise;
* `cli` — `connector asset register|certificate` and `connector verify-certificate`.
"""
