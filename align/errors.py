"""Errors a user can act on. Each names the file, field or row and what was expected."""
from __future__ import annotations


class AlignError(Exception):
    """Base class: the CLI prints the message (no traceback) and exits non-zero."""

    exit_code = 1


class ConfigError(AlignError):
    """The recipe is invalid. Carries every problem found, each with its YAML path."""

    exit_code = 2

    def __init__(self, problems: list[str] | str, source: str = "recipe"):
        if isinstance(problems, str):  # one problem of a command's arguments: the message as it is
            self.problems, self.source = [problems], source
            super().__init__(problems)
            return
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


class DataError(AlignError):
    """A data file or row does not have the expected schema."""

    exit_code = 3


class TrainingError(AlignError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""

    exit_code = 4
