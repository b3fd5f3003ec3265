"""Demo nodes: the six Western Balkan governments' CERTs and two civil-society fact-checkers."""

from __future__ import annotations

from hub.nodes import Node, NodeRegistry

DEMO_NODES: tuple[dict, ...] = (
    {"id": "al-cert", "name": "AKCESK (Albania)", "country": "AL", "kind": "government"},
    {
        "id": "ba-cert",
        "name": "CERT of Bosnia and Herzegovina",
        "country": "BA",
        "kind": "government",
    },
    {"id": "xk-cert", "name": "KOS-CERT (Kosovo)", "country": "XK", "kind": "government"},
    {"id": "me-cert", "name": "CIRT.ME (Montenegro)", "country": "ME", "kind": "government"},
    {"id": "mk-cert", "name": "MKD-CIRT (North Macedonia)", "country": "MK", "kind": "government"},
    {"id": "rs-cert", "name": "SRB-CERT (Serbia)", "country": "RS", "kind": "government"},
    {
        "id": "factcheck-ba",
        "name": "Fact-checkers of Bosnia and Herzegovina",
        "country": "BA",
        "kind": "civil-society",
    },
    {
        "id": "factcheck-rs",
        "name": "Fact-checkers of Serbia",
        "country": "RS",
        "kind": "civil-society",
    },
)


async def register_demo_nodes(registry: NodeRegistry) -> list[tuple[Node, str]]:
    """Each demo node, created if missing, with a fresh token (tokens are kept only as hashes,
    so a restarted demo can show them only by issuing new ones)."""
    issued = []
    for profile in DEMO_NODES:
        roles = ["publish", "subscribe"] if profile["kind"] == "government" else ["subscribe"]
        node = await registry.ensure({**profile, "roles": roles})
        token = await registry.replace_token(node.id)
        if token is not None:
            issued.append((node, token))
    return issued
