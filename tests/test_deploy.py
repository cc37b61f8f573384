"""deploy/: the Kubernetes manifests and the image, checked against the real command line.

No cluster and no Docker daemon: every YAML under deploy/k8s is read with `yaml.safe_load_all`,
and every container's command line (image ENTRYPOINT/CMD from deploy/Dockerfile, `command`,
`args`, `sh -c` scripts, `$(VAR)` references) is parsed by recipe-opt's own click commands, so an
unknown option or a missing argument fails here rather than in a pod. Also: the database URL
reaches each container only through the Secret (`RECIPE_OPT_STORAGE`, which `--storage` reads),
the workers are an Indexed Job with one GPU per pod that replaces killed pods, the study in the
ConfigMap is valid and its paths are mounted, and the image pins torch by a build argument.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
import yaml
from typer.testing import CliRunner

from recipe_opt.cli import app

REPO = Path(__file__).resolve().parents[1]  # not tests.conftest's: its import cycle with tests.flows trips mypy
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
EXAMPLE_SECRET = K8S / "secret.example.yaml"

STORAGE_ENV = "RECIPE_OPT_STORAGE"
# What the Secret gives a container, for parsing: no password, so nothing leaks into messages.
DUMMY_STORAGE = "postgresql+psycopg2://recipe_opt@db.invalid:5432/recipe_opt"
CONTRACT_SUBCOMMANDS = ("prepare", "worker", "select", "report")
GPU = "nvidia.com/gpu"

# scheme://user:password@host: a URL that carries a password.
PASSWORD_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@")
# Kubernetes' own expansion in command, args and env values: $(VAR); $$ is a literal $.
K8S_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
SHELL_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
SHELLS = {"sh", "bash", "dash", "ash"}
SHELL_OPERATORS = set("();<>|&")
SHELL_PREFIXES = {"exec", "if", "then", "else", "elif", "while", "until", "do", "!", "time", "{"}
# Per-pod identity a worker id may come from (fieldRef paths; JOB_COMPLETION_INDEX is injected
# by the Job controller into Indexed Jobs' containers).
POD_IDENTITY_FIELDS = (
    "metadata.name",
    "metadata.uid",
    "metadata.annotations['batch.kubernetes.io/job-completion-index']",
    "metadata.labels['batch.kubernetes.io/job-completion-index']",
)


# ---- reading the manifests ----------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    path: Path
    body: Any

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", ""))

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}: {self.kind}/{self.name}"


@cache
def documents() -> tuple[Doc, ...]:
    files = sorted({*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")})
    return tuple(
        Doc(f, body) for f in files for body in yaml.safe_load_all(f.read_text(encoding="utf-8")) if body is not None
    )


def of_kind(kind: str) -> list[Doc]:
    return [d for d in documents() if isinstance(d.body, dict) and d.kind == kind]


def pod_spec(doc: Doc) -> dict[str, Any] | None:
    spec = doc.body.get("spec") or {}
    if doc.kind == "Pod":
        return dict(spec)
    if doc.kind == "CronJob":
        return dict(spec["jobTemplate"]["spec"]["template"]["spec"])
    if doc.kind in {"Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}:
        return dict(spec["template"]["spec"])
    return None


@dataclass(frozen=True)
class Container:
    doc: Doc
    pod: dict[str, Any]
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def where(self) -> str:
        return f"{self.doc.where} container {self.name}"

    @property
    def env(self) -> list[dict[str, Any]]:
        return list(self.spec.get("env") or [])

    def env_entry(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.env if e.get("name") == name), None)

    def mounts(self) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """mountPath -> (the mount, its volume), for volumes mounted whole (no subPath)."""
        volumes = {v["name"]: v for v in self.pod.get("volumes") or []}
        return {
            str(m["mountPath"]).rstrip("/"): (m, volumes.get(m["name"], {}))
            for m in self.spec.get("volumeMounts") or []
            if not m.get("subPath")
        }

    def configmap_mounts(self) -> dict[str, str]:
        """mountPath -> ConfigMap name."""
        return {p: v["configMap"]["name"] for p, (_, v) in self.mounts().items() if "configMap" in v}


def containers(*, init: bool = True) -> list[Container]:
    out = []
    for doc in documents():
        pod = pod_spec(doc) if isinstance(doc.body, dict) else None
        if pod is None:
            continue
        specs = [*(pod.get("initContainers") or []), *pod["containers"]] if init else pod["containers"]
        out += [Container(doc, pod, c) for c in specs]
    return out


def configmap_data(name: str) -> dict[str, str] | None:
    """The ConfigMap's files, or None when it is not a manifest here (made with --from-file)."""
    for doc in of_kind("ConfigMap"):
        if doc.name == name:
            return {str(k): str(v) for k, v in (doc.body.get("data") or {}).items()}
    return None


def example_secret() -> tuple[str, dict[str, str]]:
    secrets = [d for d in of_kind("Secret") if d.path == EXAMPLE_SECRET]
    assert len(secrets) == 1, f"{EXAMPLE_SECRET.relative_to(REPO)} must hold exactly one Secret"
    body = secrets[0].body
    assert not body.get("data"), "the example Secret uses stringData (readable), not base64 data"
    return secrets[0].name, {str(k): str(v) for k, v in (body.get("stringData") or {}).items()}


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


# ---- the image ----------------------------------------------------------------------------------


@cache
def dockerfile() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) of the Dockerfile's last stage, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    buf = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank and comment lines, also inside a continued instruction
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        text = buf + stripped
        buf = ""
        keyword, _, rest = text.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    froms = [i for i, (k, _) in enumerate(instructions) if k == "FROM"]
    assert froms, "deploy/Dockerfile has no FROM"
    return tuple(instructions[froms[-1] :])


def exec_form(keyword: str) -> list[str]:
    """The last ENTRYPOINT or CMD, which must be in exec (JSON) form: in shell form PID 1 is
    /bin/sh, which does not pass SIGTERM on to recipe-opt, and a worker would never stop gracefully."""
    found = [rest for k, rest in dockerfile() if k == keyword]
    assert found, f"deploy/Dockerfile has no {keyword}"
    try:
        value = json.loads(found[-1])
    except ValueError:
        pytest.fail(f"deploy/Dockerfile: {keyword} {found[-1]} is not in exec form (a JSON list)")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{keyword} must be a JSON list"
    return [str(v) for v in value]


def strip_init(words: list[str]) -> list[str]:
    """`tini [options] -- CMD...` / `dumb-init CMD...` -> CMD..."""
    if words and Path(words[0]).name in {"tini", "tini-static"}:
        return words[words.index("--") + 1 :] if "--" in words else words[1:]
    if words and Path(words[0]).name == "dumb-init":
        return words[1:]
    return words


# ---- command lines ------------------------------------------------------------------------------


def k8s_expand(text: str, defined: set[str]) -> str:
    """Kubernetes' expansion: $(VAR) of a defined variable -> a dummy value; $$ -> $."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return f"dummy-{m.group(1)}" if m.group(1) in defined else m.group(0)

    return K8S_REF.sub(sub, text)


def argv(c: Container) -> list[str]:
    """What the container runs: Kubernetes' rules for command/args over ENTRYPOINT/CMD."""
    command, args = c.spec.get("command"), c.spec.get("args")
    if command is not None:
        words = [*command, *(args or [])]
    else:
        words = [*exec_form("ENTRYPOINT"), *(args if args is not None else exec_form("CMD"))]
    defined = {str(e["name"]) for e in c.env}
    return [k8s_expand(str(w), defined) for w in words]


def recipe_opt_args(words: list[str]) -> list[str] | None:
    """The arguments after `recipe-opt` (or `python -m recipe_opt`), or None for another program."""
    words = strip_init(list(words))
    while words and (words[0] in SHELL_PREFIXES or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0])):
        words = words[1:]
    if words and Path(words[0]).name == "env":
        return recipe_opt_args(words[1:])
    if words and Path(words[0]).name == "recipe-opt":
        return words[1:]
    if len(words) >= 3 and Path(words[0]).name.startswith("python") and words[1:3] == ["-m", "recipe_opt"]:
        return words[3:]
    return None


def shell_calls(script: str) -> list[list[str]]:
    """recipe-opt calls in a `sh -c` script: one per simple command, shell variables -> dummies."""
    calls = []
    for line in script.replace("\\\n", " ").splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        simple: list[list[str]] = [[]]
        for token in lex:
            if set(token) <= SHELL_OPERATORS:
                simple.append([])
            else:
                simple[-1].append(token)
        for words in simple:
            args = recipe_opt_args(words)
            if args is not None:
                calls.append([SHELL_REF.sub(lambda m: f"dummy-{m.group(1) or m.group(2)}", a) for a in args])
    return calls


def calls_of(c: Container) -> list[list[str]]:
    words = strip_init(argv(c))
    while words and words[0] == "exec":
        words = words[1:]
    if len(words) >= 3 and Path(words[0]).name in SHELLS and re.fullmatch(r"-[a-z]*c[a-z]*", words[1]):
        return shell_calls(words[2])
    args = recipe_opt_args(words)
    return [] if args is None else [args]


@dataclass(frozen=True)
class Call:
    container: Container
    args: tuple[str, ...]

    @property
    def subcommand(self) -> str:
        return self.args[0] if self.args else ""

    @property
    def id(self) -> str:
        return f"{self.container.doc.path.name}:{self.container.name}:{self.subcommand}"


def calls() -> list[Call]:
    return [Call(c, tuple(args)) for c in containers() for args in calls_of(c)]


def recipe_opt_containers() -> list[Container]:
    return [c for c in containers() if calls_of(c)]


@cache
def cli() -> Any:
    return typer.main.get_command(app)


def subcommand(name: str) -> Any:
    commands: dict[str, Any] = dict(getattr(cli(), "commands", {}))
    if name not in commands:
        pytest.fail(f"recipe-opt has no subcommand {name!r}, which deploy/k8s runs (it has: {', '.join(commands)})")
    return commands[name]


def option(sub: Any, flag: str) -> Any:
    return next((p for p in sub.params if flag in getattr(p, "opts", [])), None)


def envvars(param: Any) -> list[str]:
    ev = getattr(param, "envvar", None)
    return [ev] if isinstance(ev, str) else [str(e) for e in ev or []]


def under(path: str, root: str) -> str | None:
    """`path` relative to `root` if it lies below it (POSIX, as in the pod), else None."""
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    return posixpath.relpath(path, root) if path.startswith(root.rstrip("/") + "/") else None


def materialise(c: Container, tmp: Path) -> dict[str, Path]:
    """Write each ConfigMap the container mounts into `tmp`: mountPath -> local folder."""
    local = {}
    for i, (mount, name) in enumerate(sorted(c.configmap_mounts().items())):
        folder = tmp / f"configmap{i}"
        folder.mkdir(parents=True, exist_ok=True)
        for key, text in (configmap_data(name) or {}).items():
            (folder / key).write_text(text, encoding="utf-8")
        local[mount] = folder
    return local


def parse(call: Call, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """Parse a call with the real click command, as the container would run it: its
    ConfigMap's files at hand (paths under the mount are mapped to a local copy) and
    RECIPE_OPT_STORAGE set as the Secret sets it. Returns the command, its parameters and
    local path -> path in the pod."""
    monkeypatch.setenv(STORAGE_ENV, DUMMY_STORAGE)
    local = materialise(call.container, tmp)
    args, back = [], {}
    for a in call.args[1:]:
        mapped = a
        for mount, folder in local.items():
            rel = under(a, mount)
            if rel is not None:
                mapped = str(folder / rel)
                back[mapped] = a
        args.append(mapped)
    sub = subcommand(call.subcommand)
    try:
        ctx = sub.make_context(call.subcommand, args, resilient_parsing=False)
    except Exception as exc:  # typer's vendored click raises its own UsageError classes
        pytest.fail(
            f"{call.container.where}: `recipe-opt {shlex.join(call.args)}` is rejected by the CLI: "
            f"{type(exc).__name__}: {exc}"
        )
    return sub, dict(ctx.params), back


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per recipe-opt call in deploy/k8s, listed when the tests are collected."""
    if "call" in metafunc.fixturenames:
        metafunc.parametrize("call", [pytest.param(c, id=c.id) for c in calls()])


# ---- the manifests ------------------------------------------------------------------------------


def test_every_manifest_is_a_named_kubernetes_object() -> None:
    assert documents(), "no YAML under deploy/k8s"
    seen: set[tuple[str, str]] = set()
    for doc in documents():
        assert isinstance(doc.body, dict), f"{doc.path}: a document that is not a mapping"
        assert doc.body.get("apiVersion"), f"{doc.where}: no apiVersion"
        assert doc.kind, f"{doc.path}: a document without kind"
        assert doc.name, f"{doc.path}: {doc.kind} without metadata.name"
        assert (doc.kind, doc.name) not in seen, f"{doc.where}: defined twice"
        seen.add((doc.kind, doc.name))
    kinds = {d.kind for d in documents()}
    assert {"Secret", "Job"} <= kinds, kinds


def test_example_secret_holds_the_storage_url() -> None:
    from sqlalchemy.engine import make_url

    name, data = example_secret()
    assert STORAGE_ENV in data, f"Secret {name} has no key {STORAGE_ENV}"
    url = make_url(data[STORAGE_ENV])
    assert url.drivername == "postgresql+psycopg2", url.drivername
    assert url.port == 5432 and url.host and url.database and url.username
    assert url.password and "change-me" in url.password.lower(), "the example's password must read as a placeholder"
    assert "example" in EXAMPLE_SECRET.read_text(encoding="utf-8").lower()


def test_no_manifest_or_image_holds_a_password() -> None:
    """Only the example Secret may hold a URL with a password; never a ConfigMap, an env value,
    a command line (it would show in `ps` and the pod spec) or the image."""
    for doc in documents():
        if doc.path == EXAMPLE_SECRET:
            continue
        for s in strings(doc.body):
            assert not PASSWORD_URL.search(s), f"{doc.where}: a URL with a password: {s[:80]!r}"
    assert not PASSWORD_URL.search(DOCKERFILE.read_text(encoding="utf-8")), "deploy/Dockerfile holds a password URL"
    for c in containers():
        entry = c.env_entry(STORAGE_ENV)
        assert entry is None or "value" not in entry, f"{c.where}: {STORAGE_ENV} as a plain value"


def test_variable_references_are_defined() -> None:
    """$(VAR) in command/args names one of the container's env vars, and in an env value one
    defined above it (Kubernetes leaves any other reference as it is, and a shell then runs it)."""
    for c in containers():
        names = [str(e["name"]) for e in c.env]
        for word in [*(c.spec.get("command") or []), *(c.spec.get("args") or [])]:
            for m in K8S_REF.finditer(str(word)):
                assert m.group(0) == "$$" or m.group(1) in names, f"{c.where}: undefined {m.group(0)} in {word!r}"
        for i, e in enumerate(c.env):
            for m in K8S_REF.finditer(str(e.get("value", ""))):
                assert m.group(0) == "$$" or m.group(1) in names[:i], f"{c.where}: env {e['name']}: {m.group(0)}"


def test_every_recipe_opt_container_takes_the_storage_from_the_secret() -> None:
    secret, data = example_secret()
    job_containers = [c for c in containers(init=False) if c.doc.kind == "Job"]
    assert job_containers and all(calls_of(c) for c in job_containers), [
        c.where for c in job_containers if not calls_of(c)
    ]
    for c in recipe_opt_containers():
        entry = c.env_entry(STORAGE_ENV)
        assert entry is not None, f"{c.where}: no {STORAGE_ENV}"
        ref = ((entry.get("valueFrom") or {}).get("secretKeyRef")) or {}
        assert ref.get("name") == secret, f"{c.where}: {STORAGE_ENV} not from Secret {secret}: {entry}"
        assert ref.get("key") in data, f"{c.where}: key {ref.get('key')!r} is not in Secret {secret}"
        # The URL must not be put on the command line either, even as $(RECIPE_OPT_STORAGE).
        raw = [str(w) for w in [*(c.spec.get("command") or []), *(c.spec.get("args") or [])]]
        assert not any(STORAGE_ENV in w for w in raw), f"{c.where}: {STORAGE_ENV} expanded into the command line"
        for args in calls_of(c):
            assert not any(a == "--storage" or a.startswith("--storage=") for a in args), (
                f"{c.where}: --storage on the command line; the CLI reads {STORAGE_ENV}"
            )
        env = {str(e["name"]): e for e in c.env}
        assert env.get("HF_HUB_OFFLINE", {}).get("value") == "1", f"{c.where}: HF_HUB_OFFLINE=1 missing"
        assert "OMP_NUM_THREADS" in env, f"{c.where}: OMP_NUM_THREADS missing"


def test_the_contract_subcommands_are_all_deployed() -> None:
    used = [call.subcommand for call in calls()]
    for name in CONTRACT_SUBCOMMANDS:
        assert name in used, f"no container runs `recipe-opt {name}` (runs: {used})"
    # one prepare, one worker Job: creating the tables twice concurrently is what prepare avoids
    assert used.count("prepare") == 1 and used.count("worker") == 1, used


def test_command_line_parses_with_the_real_cli(call: Call, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each recipe-opt call, $(VAR)s replaced by dummies, is accepted by the click command, and
    its study config is a file of the ConfigMap mounted in the same container."""
    sub, params, back = parse(call, tmp_path, monkeypatch)

    storage = option(sub, "--storage")
    assert storage is not None, f"`recipe-opt {call.subcommand}` has no --storage option"
    assert STORAGE_ENV in envvars(storage), f"`recipe-opt {call.subcommand} --storage` does not read {STORAGE_ENV}"
    assert params[storage.name] == DUMMY_STORAGE, f"--storage did not take {STORAGE_ENV}: {params[storage.name]!r}"

    arguments = [p for p in sub.params if getattr(p, "param_type_name", "") == "argument"]
    assert arguments, f"`recipe-opt {call.subcommand}` takes no study config argument"
    config = back.get(str(params[arguments[0].name]), str(params[arguments[0].name]))
    mounts = call.container.configmap_mounts()
    where = [(m, under(config, m)) for m in mounts]
    hits = [(m, key) for m, key in where if key is not None]
    assert hits, f"{call.container.where}: config {config} is not under a ConfigMap mount ({list(mounts)})"
    mount, key = hits[0]
    data = configmap_data(mounts[mount])
    if data is not None:
        assert key in data, f"{call.container.where}: {config}: ConfigMap {mounts[mount]} has no key {key!r}"

    if call.subcommand == "worker":
        worker_id = option(sub, "--worker-id")
        assert worker_id is not None, "`recipe-opt worker` has no --worker-id option"
        assert "--worker-id" in call.args or any(a.startswith("--worker-id=") for a in call.args), (
            f"{call.container.where}: the worker is given no --worker-id"
        )
        assert "dummy-" in str(params[worker_id.name]), (
            f"{call.container.where}: --worker-id {params[worker_id.name]!r} is the same in every pod; "
            "derive it from the pod (an env var with a fieldRef)"
        )


# ---- the workers ---------------------------------------------------------------------------------


def _comes_from_the_pod(c: Container, name: str, depth: int = 0) -> bool:
    if name == "JOB_COMPLETION_INDEX":
        return True
    entry = c.env_entry(name)
    if entry is None or depth > 5:
        return False
    field = ((entry.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
    if field in POD_IDENTITY_FIELDS:
        return True
    refs = [m.group(1) for m in K8S_REF.finditer(str(entry.get("value", ""))) if m.group(1)]
    return any(_comes_from_the_pod(c, r, depth + 1) for r in refs)


def gpus(c: dict[str, Any]) -> int:
    resources = c.get("resources") or {}
    limit, request = (resources.get("limits") or {}).get(GPU), (resources.get("requests") or {}).get(GPU)
    if limit is not None and request is not None:
        assert int(limit) == int(request), f"{c.get('name')}: GPU request {request} != limit {limit}"
    return int(limit if limit is not None else request or 0)


def test_workers_are_an_indexed_job_with_one_gpu_per_pod_that_replaces_killed_pods() -> None:
    worker_calls = [call for call in calls() if call.subcommand == "worker"]
    assert len(worker_calls) == 1, [call.id for call in worker_calls]
    call = worker_calls[0]
    job, pod = call.container.doc, call.container.pod
    assert job.kind == "Job", job.where
    spec = job.body["spec"]
    assert spec.get("completionMode") == "Indexed", f"{job.where}: completionMode must be Indexed"
    n = spec.get("parallelism")
    assert isinstance(n, int) and n >= 1 and spec.get("completions") == n, (
        f"{job.where}: parallelism ({n}) == completions ({spec.get('completions')}) >= 1"
    )

    all_containers = [*(pod.get("initContainers") or []), *pod["containers"]]
    assert sum(gpus(c) for c in all_containers) == 1, f"{job.where}: each pod must take exactly one {GPU}"
    assert gpus(call.container.spec) == 1, f"{call.container.where}: the worker has no GPU of its own"

    # A killed pod comes back: the container restarts in place, or the Job replaces the pod.
    restart = pod.get("restartPolicy")
    per_index = spec.get("backoffLimitPerIndex")
    assert restart == "OnFailure" or (restart == "Never" and isinstance(per_index, int) and per_index >= 1), (
        f"{job.where}: restartPolicy OnFailure, or Never with backoffLimitPerIndex >= 1"
    )
    policy = spec.get("podFailurePolicy")
    if policy:
        assert restart == "Never", f"{job.where}: podFailurePolicy requires restartPolicy Never"
        names = {c["name"] for c in all_containers}
        for rule in policy["rules"]:
            on_exit = rule.get("onExitCodes") or {}
            assert on_exit.get("containerName", call.container.name) in names, f"{job.where}: {rule}"
            assert 0 not in (on_exit.get("values") or []), f"{job.where}: exit 0 is success, not a failure rule"

    grace = pod.get("terminationGracePeriodSeconds", 30)
    assert grace >= 60, f"{job.where}: terminationGracePeriodSeconds {grace} leaves no time for a graceful stop"

    # The worker id differs per pod.
    worker_id_args = [a for a in (call.container.spec.get("args") or []) if K8S_REF.search(str(a))]
    refs = {m.group(1) for a in worker_id_args for m in K8S_REF.finditer(str(a)) if m.group(1)}
    assert any(_comes_from_the_pod(call.container, r) for r in refs), (
        f"{call.container.where}: --worker-id must come from the pod (name or completion index): {worker_id_args}"
    )

    # Model weights and data: a shared PVC, mounted read-only.
    pvc_mounts = [(p, m, v) for p, (m, v) in call.container.mounts().items() if "persistentVolumeClaim" in v]
    assert pvc_mounts, f"{call.container.where}: no PVC for the model weights and data"
    for path, mount, _ in pvc_mounts:
        assert mount.get("readOnly") is True, f"{call.container.where}: {path} must be mounted read-only"


# ---- the study in the ConfigMap ----------------------------------------------------------------------


def in_pod(path: str, config: str, where: str) -> str:
    """Where a path of the study config points in the pod: relative ones resolve beside the config."""
    assert ".." not in Path(path).parts, f"{where}: {config}: {path!r} leaves the ConfigMap's folder"
    return posixpath.normpath(posixpath.join(posixpath.dirname(config), path))


def test_study_in_the_configmap_is_valid_and_its_paths_are_mounted(tmp_path: Path) -> None:
    from recipe_opt.config import load_study_config
    from recipe_opt.space import load_search_space

    checked = 0
    for call in calls():
        c = call.container
        config = next((a for a in call.args[1:] if a.endswith((".yaml", ".yml"))), None)
        mounts = c.configmap_mounts()
        hit = next(((m, under(config, m)) for m in mounts if config and under(config, m)), None)
        data = configmap_data(mounts[hit[0]]) if hit else None
        if hit is None or data is None or hit[1] not in data:
            continue  # the parse test reports a config outside the ConfigMap; a --from-file one is not here
        mount, key = hit
        local = materialise(c, tmp_path / c.doc.path.stem / c.name)[mount]
        raw = yaml.safe_load((local / str(key)).read_text(encoding="utf-8"))
        assert "storage" not in raw, f"{c.where}: {config} sets storage:; it comes from {STORAGE_ENV} (the Secret)"
        cfg = load_study_config(local / str(key), check_paths=False)

        paths = {
            field: in_pod(value, str(config), c.where)
            for field, value in [
                ("base_model", cfg.base_model),
                ("data_root", cfg.data_root),
                ("evaluation.tasks_dir", cfg.evaluation.tasks_dir),
                ("search_space", cfg.search_space),
            ]
        }
        # A hub id or a lineage reference would be fetched or looked up; the pods are offline.
        assert cfg.base_model_kind == "dir", f"{c.where}: base_model {cfg.base_model!r} is not a directory"
        for field, p in paths.items():
            assert any(under(p, m) for m in c.mounts()), f"{c.where}: {field} {p} is on no volume the pod mounts"
        space_key = under(paths["search_space"], mount)
        if space_key is not None:
            assert (local / space_key).is_file(), (
                f"{c.where}: the ConfigMap has no {space_key} ({paths['search_space']})"
            )
            load_search_space(local / space_key, list(cfg.sources.new))
        if call.subcommand in {"select", "report"}:
            out = in_pod(cfg.output_dir, str(config), c.where) if cfg.output_dir else None
            assert out, f"{c.where}: set output_dir to a path on the reports volume (default is beside the config)"
            writable = [m for m, (mnt, vol) in c.mounts().items() if not mnt.get("readOnly") and "configMap" not in vol]
            assert any(under(out, m) for m in writable), f"{c.where}: output_dir {out} is on no writable volume"
        checked += 1
    if of_kind("ConfigMap"):
        assert checked, "no recipe-opt container reads its study from the ConfigMap"


# ---- the image ----------------------------------------------------------------------------------


def test_image_pins_torch_by_build_arg_and_runs_recipe_opt() -> None:
    stage = list(dockerfile())
    args = dict(rest.partition("=")[::2] for k, rest in stage if k == "ARG")
    assert re.fullmatch(r"\d+\.\d+\.\d+", args.get("TORCH_VERSION", "")), (
        f"ARG TORCH_VERSION=x.y.z in the stage: {args}"
    )
    assert re.fullmatch(r"cu\d+", args.get("TORCH_CUDA", "")), f"ARG TORCH_CUDA=cuNNN in the stage: {args}"
    runs = [(i, rest) for i, (k, rest) in enumerate(stage) if k == "RUN"]
    torch = [i for i, r in runs if "pip install" in r and re.search(r"torch==\$\{?TORCH_VERSION\}?", r)]
    assert torch, "no `pip install torch==${TORCH_VERSION}`"
    assert any(re.search(r"download\.pytorch\.org/whl/\$\{?TORCH_CUDA\}?", stage[i][1]) for i in torch), (
        "torch must come from the PyTorch index of ${TORCH_CUDA}"
    )
    project = [i for i, r in runs if re.search(r"pip install\s+[\"']?\.(\[[^\]]*postgres[^\]]*\])?[\"']?(\s|$)", r)]
    assert project, "no `pip install .` of the project"
    assert any("postgres" in stage[i][1] for i in project), (
        "install the postgres extra: the storage URL is postgresql+psycopg2://"
    )
    assert min(torch) < min(project), "torch must be installed before the project (else pip picks a torch itself)"
    copied = " ".join(rest for k, rest in stage[: min(project)] if k == "COPY")
    for needed in ("pyproject.toml", "README.md", "recipe_opt"):
        assert needed in copied, f"{needed} is not copied before `pip install .` (pyproject's readme is README.md)"

    entrypoint, cmd = exec_form("ENTRYPOINT"), exec_form("CMD")
    assert recipe_opt_args(entrypoint) == [], f"ENTRYPOINT must run recipe-opt: {entrypoint}"
    result = CliRunner().invoke(app, cmd)
    assert result.exit_code == 0, f"the image's CMD {cmd} fails: {result.output}"
    for c in containers():
        if c.spec.get("command") is None:  # runs the ENTRYPOINT: its args are recipe-opt's
            assert calls_of(c), f"{c.where}: args {c.spec.get('args')} with the image's ENTRYPOINT run no recipe-opt"
    images = {c.spec.get("image") for c in recipe_opt_containers()}
    assert len(images) == 1, f"one image for every recipe-opt container: {images}"
