"""The layering: ``flows`` wires, ``operators`` decides, ``state`` stores. The domain imports
no storage and no wiring (it is handed stores that satisfy ``operators.stores``), and the
default policies ship next to the policy code."""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

from operators.policy import RecoveryPolicy

ROOT = Path(__file__).resolve().parents[1]


def _imported(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-local imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "files":
            # importlib.resources.files("package"): reading another package's data
            names.update(a.value for a in node.args if isinstance(a, ast.Constant))
    return names


def test_state_implements_the_domain_protocols() -> None:
    from operators import stores
    from state.cases import CaseStore
    from state.contacts import ContactBook
    from state.dispatch import DispatchLedger
    from state.models import ModelStore
    from state.retry import RetryItem, RetryQueue

    # One declaration of each: state re-exports the domain's protocol, never its own copy.
    assert CaseStore is stores.CaseStore and ContactBook is stores.ContactBook
    assert DispatchLedger is stores.DispatchLedger and ModelStore is stores.ModelStore
    assert RetryQueue is stores.RetryQueue and RetryItem is stores.RetryItem


def test_the_default_policies_ship_with_the_policy_code() -> None:
    shipped = resources.files("operators") / "policies"
    names = sorted(p.name for p in shipped.iterdir() if p.name.endswith(".yaml"))
    assert names == ["conservative.yaml", "default.yaml", "learning.yaml"]
    assert RecoveryPolicy.default().source == "operators/policies/default.yaml"
    assert not (ROOT / "flows" / "policies").exists()
