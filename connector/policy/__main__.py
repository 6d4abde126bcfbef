"""``python -m connector.policy``: the shell's policy CLI (connector/cli_policy.py), not part of the pure package."""

from connector.cli_policy import app

app(prog_name="python -m connector.policy")
