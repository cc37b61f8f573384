"""`recipe-opt lineage ...`: the model lineage (families, versions, releases, rollbacks) in the
study database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from recipe_opt.cli._app import STORAGE_ENV, app, console
from recipe_opt.exceptions import ConfigError

if TYPE_CHECKING:
    from recipe_opt.lineage import LineageStore, VersionInfo

T = TypeVar("T")

lineage_app = typer.Typer(
    help="The model lineage: families, versions, releases and rollbacks (in the study database).",
    no_args_is_help=True,
)
app.add_typer(lineage_app, name="lineage")

LineageStorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        "-s",
        envvar=STORAGE_ENV,
        help="The lineage database: a SQLAlchemy URL, or a study config YAML whose storage to use "
        f"(env {STORAGE_ENV}).",
    ),
]


def open_store(storage: str | None, *, must_exist: bool = True) -> LineageStore:
    """The lineage store named by --storage (a URL, or a study YAML)."""
    from recipe_opt.config import storage_option
    from recipe_opt.lineage import LineageStore

    db = storage_option(storage)
    if must_exist and not db.exists():
        raise ConfigError.single("--storage", "", f"no database at {db.sqlite_path} (run `recipe-opt search` first?)")
    store = LineageStore(db.url)
    if store.migrated_from is not None:
        console.print(f"[dim]·[/] lineage schema upgraded from {store.migrated_from} to {store.head()}")
    return store


def query(storage: str | None, fn: Callable[[LineageStore], T], *, must_exist: bool = True) -> T:
    """Open the store, run `fn` on it, close it."""
    with open_store(storage, must_exist=must_exist) as store:
        return fn(store)


def _status(v: VersionInfo) -> str:
    colour = {"released": "green", "rejected": "red", "rolled-back": "yellow"}.get(v.status, "white")
    return f"[{colour}]{v.status}[/]" + (" [bold]★ current[/]" if v.is_current else "")


@lineage_app.command("list")
def lineage_list(
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
    storage: LineageStorageOption = None,
) -> None:
    """Every model version, with parent, tier, status and its key release figures."""
    versions = query(storage, lambda store: store.list_versions(family))
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
    storage: LineageStorageOption = None,
) -> None:
    """One version: where its weights live, what it was trained on, its scores and its decisions."""
    v = query(storage, lambda store: store.get_version(version))
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
    storage: LineageStorageOption = None,
) -> None:
    """The family's versions as a tree (parent -> children), with the cycles between them."""
    versions = query(storage, lambda store: store.list_versions(family))
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
    storage: LineageStorageOption = None,
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

            root = load_study_config(storage, check_paths=False).output_path.parent
        out = family_report_dir(root, family)
    with open_store(storage) as store:
        path = write_family_report(store, store.url, family, out)
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
    storage: LineageStorageOption = None,
) -> None:
    """Register a model that came from elsewhere (a new foundation release, say)."""
    from recipe_opt.lineage import TIERS
    from recipe_opt.study import weights_fingerprint

    if tier not in TIERS:
        raise ConfigError.single("--tier", "", f"must be one of {', '.join(TIERS)}, but got {tier!r}")
    fingerprint = None
    if checksum:
        if not (weights / "config.json").is_file():
            raise ConfigError.single(
                "--weights", "", f"{weights}: not a checkpoint directory (no config.json); use --no-checksum"
            )
        fingerprint = weights_fingerprint(weights)
    v = query(
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
    storage: LineageStorageOption = None,
) -> None:
    """Set the family's current version back to a parent (or an older ancestor)."""
    old, new = query(storage, lambda store: store.rollback(family, to))
    console.print(f"rolled back {escape(family)}: current version {escape(old.name)} -> {escape(new.name)}")


@lineage_app.command("upgrade")
def lineage_upgrade(storage: LineageStorageOption = None) -> None:
    """Migrate the lineage tables to the current schema (opening the store does this too)."""
    from recipe_opt.lineage import current_revision

    with open_store(storage) as store:
        console.print(f"lineage schema at revision {current_revision(store.engine)} (head {store.head()})")
