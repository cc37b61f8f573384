"""The json export: the recipe itself (`Recipe.to_dict`) under a `_recipe_opt` provenance key.
It needs no study: nothing in it is a path."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from recipe_opt.export._common import provenance

if TYPE_CHECKING:
    from recipe_opt.config import StudyConfig
    from recipe_opt.export._formats import ExportFormat
    from recipe_opt.recipe import Recipe


def write(fmt: ExportFormat, recipe: Recipe, study: StudyConfig | None, warnings: list[str]) -> str:
    data = {"_recipe_opt": provenance(recipe, fmt.name), **recipe.to_dict()}
    return json.dumps(data, indent=2) + "\n"
