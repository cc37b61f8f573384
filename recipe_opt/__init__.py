"""recipe-opt: search the training recipe for the next update of a deployed LLM.

Importing the package is cheap: heavy modules (torch, transformers, peft, lm-eval) load only when
a trainer or evaluator is built.
"""

from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule

__version__ = "0.2.0"

__all__ = ["Adapter", "Budget", "Mixture", "Recipe", "Replay", "Schedule", "__version__"]
