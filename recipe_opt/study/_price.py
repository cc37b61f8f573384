"""The price of a search, in full updates of the recipe it chose (issue 17).

A tool that exists to save GPU hours must say what its own search cost next to the update it
plans. The numerator is everything the search's proxies spent: every trial of this cycle
(complete, pruned and failed: a pruned trial's steps were spent too) plus the selection's
re-runs and a prescreen's probes; prior observations from earlier cycles cost this cycle nothing. The denominator is the
full update of the selected recipe: projected from its proxy (the `cost` objective, the FLOP of
every step of its budget) after `search`, measured after `apply`. RegMix's proxies cost about
2% of the final run (arXiv 2407.01492); the README demo's first search cost about 4 updates.

A budgeted search (`trials.budget`) trains its pick to the end of its schedule: that run *is* the
update, and `apply` reuses it instead of training again. Its compute (`reused_tflop`) is then the
update's, not the search's: the ratio counts what the search spent besides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recipe_opt.study._records import StudyRecord

__all__ = ["SearchPrice", "search_price"]


@dataclass(frozen=True)
class SearchPrice:
    search_tflop: float  # every trial's proxy compute plus the selection's re-runs
    trials: int  # this cycle's trials, whatever their state
    rerun_tflop: float  # the re-runs' share of `search_tflop`
    update_tflop: float | None  # the selected recipe's full update (None: nothing selected)
    measured: bool  # `update_tflop` is the measured full run (after `apply`), not the projection
    reused_tflop: float = 0.0  # the pick's own full run inside the search, which `apply` reuses

    @property
    def ratio(self) -> float | None:
        """What the search spent besides the update it chose, in full updates of the pick."""
        return (self.search_tflop - self.reused_tflop) / self.update_tflop if self.update_tflop else None

    def line(self) -> str:
        """ "this search spent X TFLOP = N.N x the full update of the selected recipe (M trials)"."""
        spent = f"this search spent {self.search_tflop:.3g} TFLOP"
        trials = f"{self.trials} trial{'s' * (self.trials != 1)}"
        if self.rerun_tflop:
            trials += f", re-runs {self.rerun_tflop:.3g} TFLOP of it"
        if self.ratio is None:
            return f"{spent} ({trials}); nothing was selected"
        which = "the measured full run" if self.measured else "the full update"
        if self.reused_tflop:
            return (
                f"{spent}, {self.reused_tflop:.3g} of it the selected recipe's full run (`apply` reuses it); "
                f"the rest = {self.ratio:.2f} x {which} of the selected recipe ({trials})"
            )
        return f"{spent} = {self.ratio:.1f} x {which} of the selected recipe ({trials})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "search_tflop": self.search_tflop,
            "trials": self.trials,
            "rerun_tflop": self.rerun_tflop,
            "update_tflop": self.update_tflop,
            "measured": self.measured,
            "reused_tflop": self.reused_tflop,
            "search_over_update": self.ratio,
        }


def search_price(
    record: StudyRecord,
    *,
    selection: Mapping[str, Any] | None = None,
    measured_update_tflop: float | None = None,
) -> SearchPrice:
    """The price of `record`'s search. `selection` (the study's `selection` attribute, default
    the recorded one) names the pick and its re-runs; `measured_update_tflop` (an `apply`'s full
    run) replaces the projected cost of the pick's update."""
    selection = record.selection if selection is None else selection
    own = [t for t in record.trials if t.finished and not t.prior]  # queued recipes cost nothing yet
    reruns = float(((selection or {}).get("reruns") or {}).get("proxy_tflops") or 0.0)
    # A prescreen's probes were trained for this search too (its candidates are only evaluated).
    spent = sum(t.proxy_tflops for t in own) + reruns + float((record.prescreen or {}).get("tflop") or 0.0)
    update: float | None = measured_update_tflop
    number = (selection or {}).get("trial_number")
    selected = None if number is None else next((t for t in record.trials if t.number == int(number)), None)
    if update is None and selected is not None:
        cost = selected.values.get("cost")
        full = (selected.metrics.get("train") or {}).get("full_update_tflops")
        update = float(cost) if cost is not None else (float(full) if full is not None else None)
    reused = float(selected.fidelity.get("main_tflop") or 0.0) if selected is not None and selected.full_run else 0.0
    return SearchPrice(spent, len(own), reruns, update, measured_update_tflop is not None, reused)
