"""Every ErrorInfo reason the server can send is a value of the ErrorReason enum.

The enum (protos/wsh/v1/errors.proto) is where client authors look reasons
up; this reads every place in ``wsh/`` that makes a ``WshError`` and checks
that its reason is listed there, so a new reason cannot ship undocumented.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

from wsh.v1 import errors_pb2

ROOT = Path(__file__).resolve().parent.parent / "wsh"
# Helpers whose first argument is a reason (wsh/errors.py).
REASON_FIRST = {"invalid", "not_found"}
# The command line, the SDK and `wsh mcp` are clients: the reasons they give about
# themselves (USAGE, ...) are never sent by a server.
CLIENT_SIDE = ("cli", "client", "mcp")


def literal_reasons(node: ast.expr) -> list[str]:
    """The string constants an argument can evaluate to."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return literal_reasons(node.body) + literal_reasons(node.orelse)
    return []


def reasons_in(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        args = node.args
        if name in REASON_FIRST and args:
            found += [(r, node.lineno) for r in literal_reasons(args[0])]
        # WshError(Kind.X, "REASON", ...) and subclasses' super().__init__(Kind.X, "REASON").
        for kind, reason in itertools.pairwise(args):
            if (
                isinstance(kind, ast.Attribute)
                and isinstance(kind.value, ast.Name)
                and kind.value.id == "Kind"
            ):
                found += [(r, node.lineno) for r in literal_reasons(reason)]
        for keyword in node.keywords:
            if keyword.arg == "reason":
                found += [(r, node.lineno) for r in literal_reasons(keyword.value)]
    return found


def test_every_reason_is_in_the_error_reason_enum() -> None:
    known = set(errors_pb2.ErrorReason.keys()) - {"ERROR_REASON_UNSPECIFIED"}
    used: dict[str, str] = {}
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] in CLIENT_SIDE:
            continue
        for reason, line in reasons_in(ast.parse(path.read_text())):
            used.setdefault(reason, f"{path.relative_to(ROOT.parent)}:{line}")
    assert len(used) > 40, used  # the scan finds the reasons at all
    unknown = {r: where for r, where in used.items() if r not in known}
    assert not unknown, f"reasons missing from ErrorReason (errors.proto): {unknown}"
    # And the enum lists nothing the server never sends.
    assert known - set(used) == set(), known - set(used)
