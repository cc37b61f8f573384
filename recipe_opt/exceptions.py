"""The one exceptions module: every error recipe-opt raises on purpose derives from `RecipeOptError`.

The CLI's entry point turns any `RecipeOptError` into one line per problem on stderr and the
error's `exit_code` (2, bad input, unless the class says otherwise); anything else is a bug and
keeps its traceback. `first_line` is how every message quotes a library's exception.
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
    "first_line",
]


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name when it has none.

    Library errors (SQLAlchemy, transformers, the hub client) put the cause on the first line and
    pages of context below it; a one-line error quotes only that line.
    """
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


class RecipeOptError(Exception):
    """Root of recipe-opt's errors."""

    # The command line's exit status for this error: 2 is bad input (the user can fix the
    # input and rerun); subclasses that are not the input's fault say otherwise.
    exit_code = 2

    @property
    def lines(self) -> list[str]:
        """The error as the lines the command line prints, one per problem."""
        return [str(self)]


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

    @property
    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]

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

    exit_code = 1
