"""``connector policy check FILE`` and ``connector policy explain FILE --context ctx.json``.

The shell around the pure engine: it reads files and prints; the engine does
neither, so this module lives outside the pure ``connector.policy`` package. Mounted by
the project CLI as ``connector policy``; also runnable as ``python -m connector.policy``
(that package's ``__main__`` is the one entry point that imports it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from .policy.compiler import CompileOptions, compile_policy
from .policy.errors import PolicyError
from .policy.model import Context, Request
from .vocab import policy_contexts

app = typer.Typer(
    name="policy",
    help="Validate ODRL usage policies and explain decisions.",
    no_args_is_help=True,
    add_completion=False,
)

_out = Console(highlight=False, soft_wrap=True, emoji=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def _compile(file: Path, jsonld_context: Optional[str], eventual: bool):
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        _err.print(f"[red]{escape(f'cannot read {file}: {e.strerror}')}[/red]")
        raise typer.Exit(2)
    opts = CompileOptions(duty_reading="eventual" if eventual else "precondition")
    try:
        return compile_policy(text, context=jsonld_context, contexts=policy_contexts(), options=opts)
    except PolicyError as e:
        _err.print(f"[bold red]{escape(str(file))}: refused[/bold red]")
        for path, msg in e.errors:
            _err.print(f"  [red]{escape(path or '(document)')}[/red]: {escape(msg)}")
        raise typer.Exit(1)


@app.command()
def check(
    file: Path = typer.Argument(..., help="ODRL policy in JSON-LD (compact, expanded or flattened)."),
    jsonld_context: Optional[str] = typer.Option(
        None, "--jsonld-context", help="@context to read a policy that carries none, e.g. https://w3id.org/dspace/2025/1/context.jsonld"),
    eventual: bool = typer.Option(False, "--eventual-duties", help="Read third-party duties as 'eventually fulfilled' (ODRL Test Suite)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Validate FILE and list what the engine understood."""
    policy = _compile(file, jsonld_context, eventual)
    if as_json:
        _out.print_json(json.dumps({"valid": True, "uid": policy.uid, "type": policy.policy_type,
                                    "conflict": policy.conflict, "understood": policy.describe(),
                                    "warnings": [{"path": p, "message": m} for p, m in policy.warnings]}))
        return
    _out.print(f"[green]valid[/green] {escape(str(file))}")
    for line in policy.describe():
        _out.print(line, markup=False)


@app.command()
def explain(
    file: Path = typer.Argument(..., help="ODRL policy in JSON-LD."),
    context: Path = typer.Option(..., "--context", "-c", help=(
        "JSON file: {\"request\": {\"action\", \"target\", \"assignee\"}, \"context\": {\"now\", \"purpose\", "
        "\"recipient_jurisdiction\", \"use_count\", \"agreement_time\", ...}}. The request keys may also sit at the top level.")),
    all_rules: bool = typer.Option(False, "--all", help="Show the outcome of every rule and constraint."),
    jsonld_context: Optional[str] = typer.Option(None, "--jsonld-context", help="@context for a policy that carries none."),
    eventual: bool = typer.Option(False, "--eventual-duties", help="Read third-party duties as 'eventually fulfilled'."),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
) -> None:
    """Decide a request under FILE and print the decision with its reasons."""
    policy = _compile(file, jsonld_context, eventual)
    try:
        raw = json.loads(context.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("it must hold a JSON object")
        stray = set(raw) - {"request", "context", "action", "target", "assignee"}
        if stray:
            raise ValueError(f"unknown key(s) {', '.join(sorted(stray))} at the top level; "
                             "context fields go under \"context\", e.g. {\"context\": {\"now\": ...}}")
        req_d = dict(raw.get("request", {}))
        for k in ("action", "target", "assignee"):
            if k in raw:
                req_d[k] = raw[k]
        request = Request(**req_d)
        ctx = Context.from_dict(raw.get("context", {}))
    except (OSError, ValueError, TypeError) as e:
        _err.print(f"[red]{escape(f'bad context file {context}: {e}')}[/red]")
        raise typer.Exit(2)
    report = policy.report(request, ctx)
    decision = report.decision
    if as_json:
        d = decision.to_dict()
        if all_rules:
            d["rules"] = [{"rule": r.uid or r.path, "path": r.path, "kind": r.kind, "active": r.active,
                           "granted": r.granted, "reasons": [x.to_dict() for x in r.reasons]} for r in report.rules]
        _out.print_json(json.dumps(d))
        return
    colour = {"permit": "green", "deny": "red", "not-applicable": "yellow"}[decision.effect.value]
    lines = decision.explain().splitlines()
    _out.print(f"[bold {colour}]{escape(lines[0])}[/bold {colour}]")
    for line in lines[1:]:
        _out.print(line, markup=False)
    if all_rules:
        _out.print("Rules:")
        for r in report.rules:
            state = "grants" if r.granted else "applies" if r.active else "does not apply"
            _out.print(f"  {r.path}{' <' + r.uid + '>' if r.uid else ''} ({r.kind}): {state}", markup=False)
            for c in r.constraints:
                _print_constraint(c, 4)


def _print_constraint(c, indent: int) -> None:
    mark = {"satisfied": "ok", "not-satisfied": "NO", "unknown": "??"}[c.state]
    msg = c.reason.message if c.reason is not None else ""
    _out.print(f"{' ' * indent}[{mark}] {c.path} {msg}", markup=False)
    for k in c.children:
        _print_constraint(k, indent + 2)


def main() -> None:  # pragma: no cover
    app(prog_name="connector policy")
