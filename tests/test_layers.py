"""The package's layers (docs/architecture.md): each module imports only from its own layer and
the layers below it, so the store knows nothing of HTTP and ingest nothing of delivery. Read from
the source with `ast`, imports under TYPE_CHECKING included."""

from __future__ import annotations

import ast
from pathlib import Path

HUB = Path(__file__).resolve().parent.parent / "hub"

# Lowest first. A module may import its own layer and every layer before it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("hub", "hub.errors", "hub.ids", "hub.logs", "hub.settings")),
    ("store", ("hub.store",)),
    ("model", ("hub.nodes", "hub.policy", "hub.auth")),
    ("ingest", ("hub.ingest",)),
    ("delivery", ("hub.delivery",)),
    ("interop", ("hub.interop",)),
    ("ops", ("hub.ops",)),
    ("services", ("hub.context",)),
    ("api", ("hub.api",)),
    (
        "app",
        (
            "hub.app",
            "hub.background",
            "hub.demo",
            "hub.cli",
            "hub.cli_args",
            "hub.cli_fanout",
            "hub.cli_nodes",
            "hub.cli_serve",
            "hub.cli_store",
            "hub.cli_workers",
            "hub.__main__",
        ),
    ),
]


def layer_of(module: str) -> int:
    """The index in LAYERS of `module`: its longest matching prefix."""
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    assert found is not None, f"{module} is in no layer: add it to LAYERS"
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(HUB.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def hub_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "hub":
                found += [f"hub.{a.name}" if a.name != "__version__" else "hub" for a in node.names]
            elif node.module.startswith("hub."):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "hub" or a.name.startswith("hub.")]
    return found


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    """Every hub module imports only its own layer and those below (LAYERS)."""
    upward = []
    for path in sorted(HUB.rglob("*.py")):
        name = module_name(path)
        mine = layer_of(name)
        for imported in hub_imports(path):
            if layer_of(imported) > mine:
                upward.append(f"{name} ({LAYERS[mine][0]}) imports {imported}")
    assert not upward, "\n".join(upward)


def test_ingest_knows_nothing_of_delivery_and_store_nothing_of_http() -> None:
    """The two rules the issue names, checked on their own: no ingest module imports delivery,
    and no store module imports aiohttp."""
    for path in (HUB / "ingest").rglob("*.py"):
        assert not any(i.startswith("hub.delivery") for i in hub_imports(path)), path
    for path in (HUB / "store").rglob("*.py"):
        assert "aiohttp" not in path.read_text("utf-8"), path
