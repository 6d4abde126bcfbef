"""The one rule for identifiers (process ids, agreement, offer, dataset, asset and policy ids),
applied to DSP messages and paths here and to the management API's inputs: a string of 1 to
`MAX_ID_LENGTH` characters without control characters. Both storage backends hold such an id
(PostgreSQL refuses a NUL character in text; the columns are 255 characters), so a bad id is a 400
naming the field and the rule on either backend, never a database error."""
from __future__ import annotations

import re

#: the length of the id columns (connector/store/tables.py)
MAX_ID_LENGTH = 255
#: C0 and C1 control characters and DEL
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
RULE = f"an id is a string of 1 to {MAX_ID_LENGTH} characters without control characters"


def id_problem(value: object) -> str | None:
    """Why `value` is not an id (None: it is one)."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__ if value is not None else 'null'}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long; at most {MAX_ID_LENGTH} are allowed"
    bad = CONTROL.search(value)
    if bad is not None:
        return f"contains the control character U+{ord(bad.group()):04X} at position {bad.start()}"
    return None

