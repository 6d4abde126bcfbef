"""Computation-only offers ("usable but not visible"): approved aggregate queries run at the
provider over the asset with DuckDB; only checked, suppressed (and optionally noised) results leave.

* `query`  - the query model, its JSON and SQL (sqlglot) spellings, the check against the policy (pure)
* `sql`    - the checked query rendered to DuckDB SQL with suppression in SQL (pure)
* `engine` - the sandboxed DuckDB run with memory and time limits, OpenDP noise
* `service` - the node's side: budget and count per agreement, the data-plane and management endpoints
"""

#: the DSP transfer format of a computation: the provider answers with a pull endpoint to which
#: the consumer POSTs queries under the transfer's token (see connector/compute/README.md)
FORMAT = "HKS-Compute"
#: the ODRL action of a computation-only permission
ACTION = "https://w3id.org/hks/ns#compute"
