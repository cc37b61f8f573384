"""`recipe-opt select`: re-select a finished study's recipe under a policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recipe_opt.cli._app import StorageOption, app, quiet_libraries
from recipe_opt.cli._output import print_selection, show_reports
from recipe_opt.exceptions import ConfigError
from recipe_opt.registry import POLICIES


def parse_weights(text: str | None) -> dict[str, float] | None:
    """`gain=1,forgetting=2,cost=0.5` -> dict; errors name the option."""
    from recipe_opt.config import check_weights

    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError.single("--weights", "", f"expected NAME=NUMBER pairs, but got {part!r}") from None
    try:
        return check_weights(out)
    except ValueError as exc:
        raise ConfigError.single("--weights", "", str(exc)) from None


@app.command()
def select(
    config: Annotated[Path, typer.Argument(help="Study config YAML of a study that has run.")],
    policy: Annotated[str | None, typer.Option(help=f"One of {POLICIES.text()} (default: the config's).")] = None,
    weights: Annotated[str | None, typer.Option(help="Utility weights, e.g. gain=1,forgetting=2,cost=0.5.")] = None,
    reruns: Annotated[
        int | None, typer.Option(min=0, max=20, help="Extra seeds per top candidate before deciding.")
    ] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, help="Candidates to re-run.")] = None,
    report: Annotated[bool, typer.Option(help="Rewrite the HTML report.")] = True,
    storage: StorageOption = None,
) -> None:
    """Re-select the recipe of a finished study under a policy, without running new trials.

    Only `--reruns` trains again (the top candidates, with extra seeds); the study's trials stay.
    """
    from recipe_opt.study import load_inputs

    if policy is not None and policy not in POLICIES:
        raise ConfigError.single("--policy", "", POLICIES.unknown(policy))
    parsed = parse_weights(weights)
    cfg, space = load_inputs(config, storage=storage)
    quiet_libraries()
    from recipe_opt.study import StudyRunner, load_study, select_and_record

    study = load_study(cfg)
    # The model is needed only to re-run candidates; the runner loads it when a re-run asks.
    wants_reruns = (reruns if reruns is not None else cfg.selection.reruns) > 0
    runner = StudyRunner(cfg, space) if wants_reruns else None
    selected, path = select_and_record(
        cfg,
        study,
        space=runner.space if runner else space,
        rerunner=runner,
        policy=policy,
        weights=parsed,
        reruns=reruns,
        top_k=top_k,
    )
    print_selection(cfg, study, selected, path)
    if report:
        show_reports(cfg, study, indent="  ")
