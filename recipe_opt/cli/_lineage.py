"""`recipe-opt apply`, `recipe-opt lineage ...` and `recipe-opt fidelity`: the update-and-release
loop across cycles. Registered on the main app by `recipe_opt.cli`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from recipe_opt.cli._app import _existing_study, _fail, _load, _quiet_libraries, app, console, err, write_reports
from recipe_opt.exceptions import ConfigError, RecipeOptError

if TYPE_CHECKING:
    from recipe_opt.lineage import LineageStore, VersionInfo

T = TypeVar("T")

lineage_app = typer.Typer(
    help="The model lineage: families, versions, releases and rollbacks (in the study database).",
    no_args_is_help=True,
)
app.add_typer(lineage_app, name="lineage")

StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        "-s",
        envvar="RECIPE_OPT_STORAGE",
        help="The lineage database: a SQLAlchemy URL, or a study config YAML whose storage to use "
        "(env RECIPE_OPT_STORAGE).",
    ),
]


def _store(storage: str | None, *, must_exist: bool = True) -> LineageStore:
    """Open the lineage store named by --storage (a URL, or a study YAML)."""
    from recipe_opt.config import load_study_config, masked_url
    from recipe_opt.lineage import LineageStore

    if not storage:
        raise _fail(
            ConfigError.single("--storage", "", "no lineage store given: pass a database URL or a study config YAML")
        )
    url = storage
    if storage.endswith((".yaml", ".yml")):
        try:
            url = load_study_config(storage, check_paths=False).storage_url
        except RecipeOptError as exc:
            raise _fail(exc) from None
    elif "://" not in storage:
        raise _fail(ConfigError.single("--storage", "", f"not a database URL or a study YAML: {masked_url(storage)!r}"))
    if must_exist and url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise _fail(
            ConfigError.single(
                "--storage", "", f"no database at {url.removeprefix('sqlite:///')} (run `recipe-opt search` first?)"
            )
        )
    try:
        store = LineageStore(url)
    except RecipeOptError as exc:
        raise _fail(exc) from None
    if store.migrated_from is not None:
        console.print(f"[dim]·[/] lineage schema upgraded from {store.migrated_from} to {store.head()}")
    return store


def _query(storage: str | None, fn: Callable[[LineageStore], T], *, must_exist: bool = True) -> T:
    """Open the store, run `fn` on it, close it; a lineage error is one line and exit 2."""
    with _store(storage, must_exist=must_exist) as store:
        try:
            return fn(store)
        except RecipeOptError as exc:
            raise _fail(exc) from None


def _status(v: VersionInfo) -> str:
    colour = {"released": "green", "rejected": "red", "rolled-back": "yellow"}.get(v.status, "white")
    return f"[{colour}]{v.status}[/]" + (" [bold]★ current[/]" if v.is_current else "")


# ---- apply --------------------------------------------------------------------------------------
@app.command()
def apply(
    config: Annotated[Path, typer.Argument(help="Study config YAML of a study with a selected recipe.")],
    version: Annotated[
        str | None, typer.Option(help="Name of the new version (default: apply.version, or the base's number + 1).")
    ] = None,
) -> None:
    """Train the selected recipe at full fidelity, judge it by the release gates, register it.

    The new version's parent is the study's base version. It becomes the family's current
    version if every gate passes (exit 0); otherwise it is registered as rejected with its
    reasons, the parent stays current, and the exit status is 1.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    try:
        cfg, space = _load(config)
    except RecipeOptError as exc:
        raise _fail(exc) from None
    if version is not None:
        from recipe_opt.config import ApplyConfig

        try:
            ApplyConfig(version=version)
        except ValueError:
            raise _fail(
                ConfigError.single("--version", "", "must be 1-100 characters of letters, digits, '.', '_' or '-'")
            ) from None
    _quiet_libraries()
    import torch

    from recipe_opt.study import StudyRunner, apply_selected

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    study = _existing_study(cfg, config)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        bar = progress.add_task("full-fidelity training", total=1, visible=False)

        def step(done: int, total: int, loss: float) -> None:
            if done == total or done % 10 == 0:
                progress.update(
                    bar,
                    completed=done,
                    total=total,
                    visible=True,
                    description=f"full-fidelity training (loss {loss:.3f})",
                )

        def phase(message: str) -> None:
            progress.console.print(f"[dim]·[/] {escape(message)}")

        runner = StudyRunner(cfg, space)
        try:
            result = apply_selected(cfg, runner, study, version=version, progress=step, phase=phase)
        except RecipeOptError as exc:
            raise _fail(exc) from None
    write_reports(cfg, study)  # the checklist now has the full run, the family report the new version
    v = result.version
    table = Table(title=f"Release checks for {v.ref} against {v.parent}", title_justify="left")
    for col in ("gate", "measured", "bound", "result"):
        table.add_column(col, justify="left" if col in ("gate", "result") else "right")
    for c in result.checks:
        table.add_row(
            c.gate,
            f"{c.measured:+.3f}" if c.gate != "max_cost" else f"{c.measured:.3g} TFLOP",
            "-" if c.bound is None else f"{c.bound:g}",
            "[green]pass[/]" if c.passed else "[red]FAIL[/]",
        )
    console.print(table)
    pv, fv = result.proxy, result.full.values
    console.print(
        f"proxy vs full: gain {pv['gain']:+.3f} -> {fv['gain']:+.3f}, forgetting {pv['forgetting']:+.3f} -> "
        f"{fv['forgetting']:+.3f}, cost {pv['cost']:.3g} (projected) -> {fv['cost']:.3g} TFLOP (measured)"
    )
    console.print(f"weights: {escape(str(result.weights_path))} ({result.seconds:.0f} s)")
    if result.released:
        console.print(f"[bold green]released[/] {v.ref}: it is now the current version of {v.family}")
        hint = (
            f"next cycle: a study config with base_version: {v.name} and base_model: {result.weights_path} "
            "(warm_start: {studies: [auto]} seeds it from this one)"
        )
        console.print(escape(hint))
    else:
        console.print(f"[bold red]rejected[/] {v.ref}; {v.family}'s current version stays {escape(str(v.parent))}")
        for r in result.reasons:
            console.print(f"  {escape(r)}")
        raise typer.Exit(1)


# ---- lineage ------------------------------------------------------------------------------------
@lineage_app.command("list")
def lineage_list(
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
    storage: StorageOpt = None,
) -> None:
    """Every model version, with parent, tier, status and its key release figures."""
    versions = _query(storage, lambda store: store.list_versions(family))
    if not versions:
        console.print("the lineage store holds no model versions yet")
        return
    table = Table(title="Model versions", title_justify="left")
    for col in ("version", "parent", "tier", "status", "gain", "forgetting", "created", "from"):
        table.add_column(col)
    for v in versions:
        d = v.decision
        full = (d.metrics.get("full") or {}) if d else {}
        table.add_row(
            escape(v.ref),
            escape(v.parent or "-"),
            v.tier,
            _status(v),
            f"{full['gain']:+.3f}" if "gain" in full else "",
            f"{full['forgetting']:+.3f}" if "forgetting" in full else "",
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(d.cycle or d.action) if d else "",
        )
    console.print(table)


@lineage_app.command("show")
def lineage_show(
    version: Annotated[str, typer.Argument(help="FAMILY/VERSION, or VERSION when unique.")],
    storage: StorageOpt = None,
) -> None:
    """One version: where its weights live, what it was trained on, its scores and its decisions."""
    v = _query(storage, lambda store: store.get_version(version))
    console.print(f"[bold]{escape(v.ref)}[/]  {_status(v)}  tier {v.tier}  parent {escape(v.parent or '-')}")
    console.print(f"  weights:  {escape(v.weights_uri)}")
    console.print(f"  checksum: {v.weights_checksum or '-'}")
    if v.description:
        console.print(f"  note:     {escape(v.description)}")
    if v.data_manifest:
        console.print("  trained on:")
        for name, item in v.data_manifest.items():
            if "dataset" in item:  # a `datasets` source: no file to hash
                where = f"dataset {item['dataset']} [{item.get('split')}]"
                console.print(f"    {escape(name):<22} {escape(where)}")
            else:
                console.print(
                    f"    {escape(name):<22} sha256 {str(item.get('sha256', ''))[:16]}  {escape(str(item.get('path')))}"
                )
    if v.evaluations:
        table = Table(title="Full-fidelity suite scores", title_justify="left")
        for col in ("suite", "kind", "score", "cycle", "backend"):
            table.add_column(col)
        for e in v.evaluations:
            table.add_row(escape(e.suite), e.kind, f"{e.score:.3f}", escape(e.cycle or "-"), e.backend)
        console.print(table)
    for d in v.decisions:
        line = f"  {d.created_at:%Y-%m-%d %H:%M} {d.action}"
        if d.cycle:
            line += f" from {d.cycle}"
        if d.recipe_hash:
            line += f" recipe {d.recipe_hash[:12]}"
        console.print(escape(line))
        for r in d.reasons:
            console.print(f"      {escape(r)}")
        proxy, full = d.metrics.get("proxy"), d.metrics.get("full")
        if proxy and full:
            console.print(
                f"      proxy gain {proxy['gain']:+.3f} / forgetting {proxy['forgetting']:+.3f}; "
                f"full gain {full['gain']:+.3f} / forgetting {full['forgetting']:+.3f}"
            )


@lineage_app.command("tree")
def lineage_tree(
    family: Annotated[str, typer.Argument(help="Model family.")],
    storage: StorageOpt = None,
) -> None:
    """The family's versions as a tree (parent -> children), with the cycles between them."""
    versions = _query(storage, lambda store: store.list_versions(family))
    by_parent: dict[str | None, list[VersionInfo]] = {}
    for v in versions:
        by_parent.setdefault(v.parent, []).append(v)
    tree = Tree(f"[bold]{escape(family)}[/]")

    def add(node: Tree, v: VersionInfo) -> None:
        d = v.decision
        via = f" [dim]via {escape(d.cycle)}[/]" if d and d.cycle else ""
        full = (d.metrics.get("full") or {}) if d else {}
        figures = f" [dim]gain {full['gain']:+.3f}, forgetting {full['forgetting']:+.3f}[/]" if "gain" in full else ""
        child = node.add(f"{escape(v.name)} ({v.tier}, {_status(v)}){via}{figures}")
        for c in by_parent.get(v.name, []):
            add(child, c)

    for root in by_parent.get(None, []):
        add(tree, root)
    console.print(tree)


@lineage_app.command("report")
def lineage_report(
    family: Annotated[str, typer.Argument(help="Model family.")],
    storage: StorageOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output directory (default: reports/<family>-lineage beside the study reports)."),
    ] = None,
) -> None:
    """Write the family's cross-cycle report: every cycle's front overlaid, the lineage as a tree,
    each task's score per version, and one row per cycle. Offline HTML, like the study reports."""
    from recipe_opt.report import family_report_dir, write_family_report

    if out is None:
        root = Path("reports")
        if storage and storage.endswith((".yaml", ".yml")):
            from recipe_opt.config import load_study_config

            try:
                root = load_study_config(storage, check_paths=False).output_path.parent
            except RecipeOptError as exc:
                raise _fail(exc) from None
        out = family_report_dir(root, family)
    with _store(storage) as store:
        try:
            path = write_family_report(store, store.url, family, out)
        except RecipeOptError as exc:
            raise _fail(exc) from None
    console.print(f"family report: {escape(str(path))}")


@lineage_app.command("register")
def lineage_register(
    name: Annotated[str, typer.Argument(help="Version name, e.g. v0 or base-2026-11.")],
    family: Annotated[str, typer.Option(help="Model family.")],
    weights: Annotated[Path, typer.Option(help="Checkpoint directory (or any path/URI with --no-checksum).")],
    parent: Annotated[str | None, typer.Option(help="Parent version in the same family.")] = None,
    tier: Annotated[str, typer.Option(help="foundation, industrial or application.")] = "foundation",
    note: Annotated[str | None, typer.Option(help="Free text kept with the version.")] = None,
    current: Annotated[
        bool, typer.Option("--current/--not-current", help="Make it the family's current version.")
    ] = True,
    checksum: Annotated[bool, typer.Option("--checksum/--no-checksum", help="Fingerprint the weights files.")] = True,
    storage: StorageOpt = None,
) -> None:
    """Register a model that came from elsewhere (a new foundation release, say)."""
    from recipe_opt.lineage import TIERS
    from recipe_opt.study import weights_fingerprint

    if tier not in TIERS:
        raise _fail(ConfigError.single("--tier", "", f"must be one of {', '.join(TIERS)}, but got {tier!r}"))
    fingerprint = None
    if checksum:
        if not (weights / "config.json").is_file():
            raise _fail(
                ConfigError.single(
                    "--weights", "", f"{weights}: not a checkpoint directory (no config.json); use --no-checksum"
                )
            )
        fingerprint = weights_fingerprint(weights)
    v = _query(
        storage,
        lambda store: store.register_version(
            family,
            name,
            weights_uri=str(weights.resolve()) if checksum else str(weights),
            weights_checksum=fingerprint,
            tier=tier,
            parent=parent,
            description=note,
            make_current=current,
        ),
        must_exist=False,
    )
    console.print(f"registered {escape(v.ref)} ({v.tier}){' as current' if v.is_current else ''}")


@lineage_app.command("rollback")
def lineage_rollback(
    family: Annotated[str, typer.Argument(help="Model family.")],
    to: Annotated[str | None, typer.Option(help="Ancestor to make current (default: the current's parent).")] = None,
    storage: StorageOpt = None,
) -> None:
    """Set the family's current version back to a parent (or an older ancestor)."""
    old, new = _query(storage, lambda store: store.rollback(family, to))
    console.print(f"rolled back {escape(family)}: current version {escape(old.name)} -> {escape(new.name)}")


@lineage_app.command("upgrade")
def lineage_upgrade(storage: StorageOpt = None) -> None:
    """Migrate the lineage tables to the current schema (opening the store does this too)."""
    from recipe_opt.lineage import current_revision

    with _store(storage) as store:
        console.print(f"lineage schema at revision {current_revision(store.engine)} (head {store.head()})")


# ---- fidelity -----------------------------------------------------------------------------------
@app.command()
def fidelity(
    family: Annotated[str, typer.Argument(help="Model family.")],
    storage: StorageOpt = None,
    low: Annotated[float, typer.Option(help="Warn when a rank correlation falls below this.")] = 0.5,
) -> None:
    """Proxy vs full-run rank correlation (Spearman's rho) per objective, across the family's recipes.

    Every `apply` adds one recipe run at both fidelities; bench/proxy_fidelity.py adds K.
    """
    from recipe_opt.study import fidelity_report

    started = time.perf_counter()
    rep = _query(storage, lambda store: fidelity_report(store, family, low=low))
    table = Table(title=f"Proxy vs full fidelity, family {family} ({len(rep.pairs)} recipes)", title_justify="left")
    for col in ("cycle", "trial", "origin", "recipe", "gain proxy/full", "forgetting proxy/full", "cost proxy/full"):
        table.add_column(col)
    for p in rep.pairs:
        table.add_row(
            escape(p.cycle),
            "-" if p.trial_number is None else str(p.trial_number),
            p.origin,
            p.recipe_hash[:12],
            f"{p.proxy['gain']:+.3f} / {p.full['gain']:+.3f}",
            f"{p.proxy['forgetting']:+.3f} / {p.full['forgetting']:+.3f}",
            f"{p.proxy['cost']:.3g} / {p.full['cost']:.3g}",
        )
    console.print(table)
    rho = ", ".join(f"{k} {'n/a' if v is None else f'{v:+.2f}'}" for k, v in rep.rho.items())
    console.print(f"Spearman rho (proxy vs full): {rho}  [dim]({time.perf_counter() - started:.1f} s)[/]")
    for w in rep.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")
