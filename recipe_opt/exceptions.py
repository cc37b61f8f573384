"""The one exceptions module: every error recipe-opt raises on purpose derives from `RecipeOptError`.

The CLI turns any `RecipeOptError` into one line per problem on stderr and exit status 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "DataError",
    "EvaluationError",
    "LineageError",
    "RecipeOptError",
    "StorageError",
    "StudyError",
    "TrainingError",
]


class RecipeOptError(Exception):
    """Root of recipe-opt's errors."""


class ConfigProblem:
    """One problem in one file: where (file and dotted field) and what."""

    __slots__ = ("field", "message", "source")

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message

    def __str__(self) -> str:
        where = f"{self.source}: {self.field}" if self.field else self.source
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self.source!r}, {self.field!r}, {self.message!r})"


class ConfigError(RecipeOptError, ValueError):
    """A search space, study config or recipe file is invalid.

    Holds every problem found (torchtune's `validate` style: report all at once); `str()` gives one
    line per problem, each naming the file and the field.
    """

    def __init__(self, problems: list[ConfigProblem]) -> None:
        if not problems:
            raise ValueError("`problems` must not be empty")
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, source: str, field: str, message: str) -> ConfigError:
        return cls([ConfigProblem(source, field, message)])


class DataError(RecipeOptError):
    """A data file (JSONL source, eval set) is missing or malformed."""


class TrainingError(RecipeOptError):
    """The proxy trainer could not run a recipe (bad model path, unknown target module, ...)."""


class EvaluationError(RecipeOptError):
    """An eval suite could not be run or scored."""


class LineageError(RecipeOptError):
    """The lineage store is unreachable or inconsistent."""


class StudyError(RecipeOptError):
    """The study cannot be created, resumed or selected from."""


class StorageError(StudyError):
    """The study's database stayed unreachable past the retry window (not bad input: retry later)."""
