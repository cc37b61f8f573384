"""Export a recipe as the config of the full update run: HF Trainer, LLaMA-Factory, axolotl or JSON.

Imports nothing heavy (no torch, transformers, peft or optuna): `recipe-opt export` starts fast.
"""

from recipe_opt.export._formats import EXPORT_FORMATS, ExportResult, check_format, export_recipe, format_names_text

__all__ = ["EXPORT_FORMATS", "ExportResult", "check_format", "export_recipe", "format_names_text"]
