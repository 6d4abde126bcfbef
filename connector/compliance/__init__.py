"""Cross-border compliance (issue 14): the record of an agreement made under a cross-border policy
(`record`, pure), and the node's side of it (`service`: database, clearing house, management API)."""
