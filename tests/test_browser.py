"""The reports in a real browser: Debian's headless Chromium (`apt-get install chromium`, which the
README's test command runs), driven by Playwright through that binary; nothing downloads a browser.

Each page is opened from disk with no server. A test fails on any JavaScript error or console
error, on any request that leaves the disk (a CDN), and on any plot that did not render. Every
page is saved as a full-page screenshot (`RECIPE_OPT_SCREENSHOTS=DIR` keeps them; by default
they go to pytest's temporary directory).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.flows import STUDY_REPORT_PLOTS, TwoCycles

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _chromium() -> str:
    path = os.environ.get("RECIPE_OPT_CHROMIUM") or shutil.which("chromium")
    if path is None:
        message = "no `chromium` on PATH: install Debian's package (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI runs the browser tests, the README's test command installs it")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        # --no-sandbox: the tests run as root on CI machines, where Chromium's sandbox refuses to start.
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield b
        b.close()


@dataclass
class Opened:
    page: Any
    errors: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("RECIPE_OPT_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def open_report(browser: Any, path: Path) -> Opened:
    """Open `path` from disk and wait until every plotly plot on it has drawn (or 30 s pass)."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    opened = Opened(page)
    page.on("pageerror", lambda exc: opened.errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: opened.errors.append(f"console: {msg.text}") if msg.type == "error" else None)

    def dialog(d: Any) -> None:  # an alert() would mean a user string ran as code
        opened.errors.append(f"dialog: {d.message}")
        d.dismiss()

    page.on("dialog", dialog)
    page.on(
        "request",
        lambda req: opened.remote.append(req.url) if not req.url.startswith(("file://", "data:", "blob:")) else None,
    )
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.plotly-graph-div')].every(d => d.querySelector('.main-svg'))",
        timeout=30_000,
    )
    return opened


def rendered_plots(page: Any) -> dict[str, int]:
    """Plot div id -> number of drawn data elements (points, bars, lines, 3-D canvases)."""
    return dict(
        page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('.plotly-graph-div')].map(d => [d.id,
                 d.querySelectorAll('.point, .bars path, .scatterlayer .js-line, .gl-container canvas,'
                                    + ' .parcoords .line, .parcoords-line-layers canvas').length]))"""
        )
    )


def test_study_report_renders_every_view(browser: Any, two_cycles: TwoCycles, screenshots: Path) -> None:
    opened = open_report(browser, two_cycles.tmp / "out2" / "index.html")  # cycle 2: warm-started, applied
    # The diagnostics are folded below the decision; a reviewer who opens them sees every plot drawn.
    assert opened.page.locator("#diagnostics").get_attribute("open") is None
    opened.page.locator("#diagnostics > summary").click()
    assert opened.page.locator("#parallel").bounding_box()["width"] > 600  # redrawn at the page's width
    plots = rendered_plots(opened.page)
    assert [p for p in STUDY_REPORT_PLOTS if p not in plots] == [], plots
    assert [p for p, drawn in plots.items() if drawn == 0] == [], plots
    # One bar per suite for base, proxy, full run, and v1 at its own release: 5 suites x 4.
    assert opened.page.locator("#retention .bars path").count() == 5 * 4
    assert opened.page.locator("#release-checklist").is_visible()
    opened.page.screenshot(path=str(screenshots / "study-report.png"), full_page=True)
    assert opened.errors == [] and opened.remote == []


def test_trial_table_sorts_on_a_click(browser: Any, two_cycles: TwoCycles) -> None:
    opened = open_report(browser, two_cycles.tmp / "out2" / "index.html")
    page = opened.page
    page.locator("#diagnostics > summary").click()

    def column(i: int) -> list[str]:
        return [str(t).strip() for t in page.locator(f"#trials tr td:nth-child({i})").all_inner_texts()]

    gain = page.locator("#trials th", has_text="gain")
    gain.click()
    values = [float(v) for v in column(3) if v]
    assert len(values) >= 4 and values == sorted(values)
    gain.click()  # again: descending
    values = [float(v) for v in column(3) if v]
    assert values == sorted(values, reverse=True)
    page.locator("#trials th", has_text="trial").click()
    assert [int(v) for v in column(1)] == sorted(int(v) for v in column(1))
    assert opened.errors == []


def test_family_report_renders_fronts_and_tree(browser: Any, two_cycles: TwoCycles, screenshots: Path) -> None:
    opened = open_report(browser, two_cycles.tmp / "demo-lineage" / "index.html")
    plots = rendered_plots(opened.page)
    assert {"lineage-tree", "fronts", "skills"} <= plots.keys() and all(plots.values()), plots
    # Four versions in the tree (v0, the rejected v1-strict, v1, v2), one marker each.
    assert opened.page.locator("#lineage-tree .scatterlayer .trace:not(:first-child) .point").count() == 4
    legend = opened.page.locator("#fronts .legendtext").all_text_contents()
    assert any(t.startswith("c1 (v0 → v1)") for t in legend) and any(t.startswith("c2 (v1 → v2)") for t in legend)
    assert opened.page.locator("#cycles tr").count() == 1 + 2  # header + one row per cycle
    opened.page.screenshot(path=str(screenshots / "family-report.png"), full_page=True)
    assert opened.errors == [] and opened.remote == []


def test_user_strings_render_as_text(browser: Any, tmp_path: Path) -> None:
    from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
    from recipe_opt.report import write_report

    evil = "<script>alert(1)</script>"
    study = optuna.create_study(study_name=evil, directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("base_evaluation", {"suites": {"<img src=x onerror=alert(2)>": 1.0}, "tasks": {}})
    study.set_user_attr("config", {"family": evil, "base_version": "<b onmouseover=alert(3)>v0</b>", "gates": {}})
    for i in range(3):
        r = Recipe(
            Mixture.from_mapping({"<img src=y onerror=alert(4)>": 1.0}),
            Replay(0.1 * i),
            Schedule(1e-3, 0.1, "cosine"),
            Adapter(8, 2.0, ("q_proj",)),
            Budget(100, 8),
        )
        study.add_trial(
            optuna.trial.create_trial(
                values=[0.1 * i, 0.01, 1.0],
                user_attrs={
                    "recipe": r.to_dict(),
                    "summary": r.summary(),
                    "metrics": {"gain": 0.1 * i, "forgetting": 0.01, "cost": 1.0, "suites_after": {}},
                },
            )
        )
    study.set_user_attr("selection", {"trial_number": 2, "rule": evil, "reason": evil})
    opened = open_report(browser, write_report(study, tmp_path))
    page = opened.page
    assert evil in page.locator("h1").inner_text()  # shown as text...
    assert page.locator("img").count() == 0 and page.locator("h1 script").count() == 0  # ...never as markup
    # Hover a point (through plotly's drag layer, as a mouse does): its label names the mixture's
    # source, which must show as text too.
    point = page.locator("#pareto-front .point").first
    point.scroll_into_view_if_needed()  # the front sits below the decision and the checklist
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    label = page.locator("#pareto-front .hoverlayer .hovertext")
    label.wait_for(timeout=10_000)
    assert "<img src=y onerror=alert(4)>" in str(label.text_content())
    assert page.locator("img").count() == 0
    assert opened.errors == [] and opened.remote == []


def test_first_screen_says_what_was_picked_how_sure_and_whether_to_release(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    from recipe_opt.report import write_report
    from tests.reviewer import reviewer_study

    opened = open_report(browser, write_report(reviewer_study(), tmp_path))
    page = opened.page
    page.screenshot(path=str(screenshots / "first-screen.png"))
    fold = 900  # the viewport's height: what a reviewer sees without scrolling
    for block in ("#verdict", "#pick", "#pick-values", "#tradeoff", "#alternatives", "#uncertainty", "#watch"):
        box = page.locator(block).bounding_box()
        assert box is not None and box["y"] + box["height"] <= fold, (block, box)
    assert "Forecast only" in page.locator("#verdict").inner_text()
    pick = page.locator("#pick").inner_text()
    assert "trial 2" in pick and "mul 60%, diff 40%" in pick and "LoRA rank 16" in pick and "600 steps" in pick
    assert (
        "0.537 TFLOP" in page.locator("#pick-values").inner_text()
        or "0.537" in page.locator("#pick-values").inner_text()
    )
    assert "the most expensive" in page.locator("#tradeoff").inner_text()
    assert "trial 1" in page.locator("#alternatives").inner_text()
    assert "18% less compute" in page.locator("#alternatives").inner_text()
    assert "declared: the oracle's noise floor" in page.locator("#uncertainty").inner_text()
    assert "Within noise" in page.locator("#uncertainty").inner_text()
    # The flagged task, at the top and in the task table.
    assert "demo_diff" in page.locator("#watch").inner_text()
    assert page.locator("#task-moves tr.flagged").all_inner_texts()[0].startswith("demo_diff")
    # Before apply, the checklist's gate rows are forecasts, never a bare "pass".
    statuses = page.locator("#release-checklist + p + table td:last-child").all_inner_texts()
    assert "forecast: pass" in statuses and "pass" not in statuses
    # No Markdown shows raw: our `code` and *emphasis* became tags.
    text = page.locator("body").inner_text()
    assert "`" not in text and "*safety*" not in text
    assert page.locator("#why code", has_text="gain-within-gates").count() == 1
    # Both gates are drawn on the front; the crossed trial's hover names the gate it missed.
    annotations = page.locator("#pareto-front .annotation-text").all_text_contents()
    assert any("max forgetting 0.05" in a for a in annotations) and any("min gain 0.1" in a for a in annotations)
    cross = page.locator("#pareto-front .scatterlayer .trace").first.locator(".point").first  # "fails a gate"
    cross.scroll_into_view_if_needed()
    box = cross.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    label = page.locator("#pareto-front .hoverlayer .hovertext")
    label.wait_for(timeout=10_000)
    assert "fails: arithmetic +0.600 vs the base (bound 0.05)" in str(label.text_content())
    page.locator("#diagnostics > summary").click()
    row = page.locator("#trials tr", has=page.locator("td:first-child", has_text="0")).first.inner_text()
    assert "fails arithmetic" in row and "q_proj, v_proj" in row
    page.screenshot(path=str(screenshots / "study-report-reviewer.png"), full_page=True)
    assert opened.errors == [] and opened.remote == []


def test_family_report_flags_the_regressed_skill(browser: Any, tmp_path: Path, screenshots: Path) -> None:
    from recipe_opt.lineage import LineageStore
    from recipe_opt.report import write_family_report
    from tests.reviewer import record_release, reviewer_study

    url = f"sqlite:///{tmp_path / 'fam.db'}"
    reviewer_study(url)
    record_release(url)
    with LineageStore(url) as store:
        path = write_family_report(store, url, "fam", tmp_path / "fam")
    opened = open_report(browser, path)
    page = opened.page
    assert "demo_diff 0.227 → 0.091 in v1" in page.locator("#flag-line").inner_text()
    assert page.locator("#flag-line").bounding_box()["y"] < 900
    assert "demo_diff" in page.locator("#skill-flags").inner_text()
    assert page.locator("#skills .legendtext", has_text="fell beyond noise").count() == 1
    # Decisions and their gate checks are in a table, not only on hover.
    assert "every release gate passes" in page.locator("#decisions").inner_text()
    # The fronts' forgetting axis is scaled to the fronts, not 0 to 1.
    y_range = page.evaluate("() => document.getElementById('fronts').layout.yaxis.range")
    assert y_range[1] - y_range[0] < 0.1, y_range
    page.screenshot(path=str(screenshots / "family-report-flags.png"), full_page=True)
    assert opened.errors == [] and opened.remote == []
