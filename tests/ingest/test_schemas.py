"""The schema files, their examples and the OpenAPI description agree with each other."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
import yaml

from hub.ingest.validation import SCHEMA_NAMES, SchemaSet, schemas_dir

SCHEMAS = schemas_dir()
EXAMPLES = SCHEMAS / "examples"


def _load(path: pathlib.Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _examples(kind: str) -> list[tuple[str, pathlib.Path]]:
    return [
        (name, path)
        for name in SCHEMA_NAMES
        for path in sorted((EXAMPLES / name / kind).glob("*.json"))
    ]


def _id(item: tuple[str, pathlib.Path]) -> str:
    return f"{item[0]}/{item[1].stem}"


@pytest.fixture(scope="module")
def schema_set() -> SchemaSet:
    return SchemaSet()


def _reference(name: str) -> jsonschema.Draft202012Validator:
    document = _load(SCHEMAS / f"{name}.schema.json")
    return jsonschema.Draft202012Validator(
        document, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _fast(name: str) -> Any:
    document = _load(SCHEMAS / f"{name}.schema.json")
    return jsonschema_rs.Draft202012Validator(document, validate_formats=True)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    """Each schema file is a well-formed Draft 2020-12 schema with an $id."""
    document = _load(SCHEMAS / f"{name}.schema.json")
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"].endswith(f"/{name}.schema.json")
    jsonschema.Draft202012Validator.check_schema(document)
    assert jsonschema_rs.meta.is_valid(document)


def test_every_schema_has_examples() -> None:
    """Each schema ships at least one valid and one invalid example."""
    for name in SCHEMA_NAMES:
        assert list((EXAMPLES / name / "valid").glob("*.json")), name
        assert list((EXAMPLES / name / "invalid").glob("*.json")), name


@pytest.mark.parametrize("example", _examples("valid"), ids=_id)
def test_valid_example_passes_both_validators(
    example: tuple[str, pathlib.Path], schema_set: SchemaSet
) -> None:
    """A valid example is accepted by jsonschema, jsonschema_rs and SchemaSet.problems."""
    name, path = example
    document = _load(path)
    assert list(_reference(name).iter_errors(document)) == []
    assert _fast(name).is_valid(document)
    assert schema_set.problems(name, document) == []


@pytest.mark.parametrize("example", _examples("invalid"), ids=_id)
def test_invalid_example_fails_at_the_expected_pointer(
    example: tuple[str, pathlib.Path], schema_set: SchemaSet
) -> None:
    """An invalid example fails both validators; problems() names its pointer and rule."""
    name, path = example
    example_doc = _load(path)
    assert set(example_doc) == {"description", "expect", "document"}
    document = example_doc["document"]
    assert not _reference(name).is_valid(document)
    assert not _fast(name).is_valid(document)
    found = {(p.pointer, p.rule) for p in schema_set.problems(name, document)}
    for expected in example_doc["expect"]:
        assert (expected["pointer"], expected["rule"]) in found


def test_country_lists_are_identical_in_every_schema() -> None:
    """The country enum copied into each schema has not drifted from alert.schema.json's."""
    reference = _load(SCHEMAS / "alert.schema.json")["$defs"]["country"]
    assert "XK" in reference["enum"] and "RS" in reference["enum"]
    for name in SCHEMA_NAMES:
        country = _load(SCHEMAS / f"{name}.schema.json").get("$defs", {}).get("country")
        if country is not None:
            assert country == reference, name


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_openapi_parses_and_its_schema_refs_resolve() -> None:
    """openapi.yaml is OpenAPI 3.1 and every $ref to a schema file names an existing schema."""
    spec = yaml.safe_load((SCHEMAS / "openapi.yaml").read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.1")
    file_refs = [r for r in _refs(spec) if not r.startswith("#")]
    assert {r.split("#")[0] for r in file_refs} >= {
        f"./{n}.schema.json" for n in ("alert", "batch", "node", "retract")
    }
    for ref in file_refs:
        assert (SCHEMAS / ref.split("#")[0]).is_file(), ref
    for ref in (r for r in _refs(spec) if r.startswith("#/")):
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part]
        assert isinstance(target, dict), ref
