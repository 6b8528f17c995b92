"""What the database answered `make run`'s function containers during a `make load` run.

With DATABASE_ANSWERS_DIR set, each container process writes its running totals to
`<folder>/<function>-<pid>.json` after every invocation (devtools/container_aids.py): commits
sent, and failed answers by "code codeName". A run's answers are the files' sum at its end minus
their sum at its start.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from wallet_service.storage.transactions import WRITE_CONFLICT

NO_SUCH_TRANSACTION = 251


@dataclass(frozen=True)
class AnswerTotals:
    commits: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # "112 WriteConflict": count
    conflicts_by_function: Counter[str] = field(default_factory=Counter)  # "Transfer": write conflicts

    def __sub__(self, earlier: AnswerTotals) -> AnswerTotals:
        return AnswerTotals(
            self.commits - earlier.commits,
            _difference(self.failed, earlier.failed),
            _difference(self.conflicts_by_function, earlier.conflicts_by_function),
        )

    def with_code(self, code: int) -> int:
        return sum(count for label, count in self.failed.items() if label.split(" ", 1)[0] == str(code))

    @property
    def write_conflicts(self) -> int:
        return self.with_code(WRITE_CONFLICT)

    @property
    def no_such_transaction(self) -> int:
        return self.with_code(NO_SUCH_TRANSACTION)

    @property
    def others(self) -> Counter[str]:
        return Counter(
            {
                label: count
                for label, count in self.failed.items()
                if label.split(" ", 1)[0] not in (str(WRITE_CONFLICT), str(NO_SUCH_TRANSACTION))
            }
        )


def _difference(later: Counter[str], earlier: Counter[str]) -> Counter[str]:
    difference = Counter(later)
    difference.subtract(earlier)
    return +difference  # unary + drops the zeros


def read(folder: Path) -> AnswerTotals:
    """The sum of every container's file in `folder` as it is now."""
    totals = AnswerTotals()
    commits = 0
    for path in sorted(folder.glob("*.json")):
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # replaced while read (files are swapped in whole, so this is rare): the next read has it
        commits += int(counts.get("commits", 0))
        failed = Counter({label: int(count) for label, count in counts.get("failed", {}).items()})
        totals.failed.update(failed)
        function = path.stem.rpartition("-")[0] or path.stem  # "<function>-<pid>"
        totals.conflicts_by_function[function] += AnswerTotals(failed=failed).write_conflicts
    return AnswerTotals(commits, totals.failed, +totals.conflicts_by_function)


def describe(answers: AnswerTotals | None) -> str:
    """One sentence for the report."""
    if answers is None:
        return (
            "The database's answers to the service are not available with BASE_URL: they are counted only in "
            "make run's server started here (DATABASE_ANSWERS_DIR)."
        )
    others = ", ".join(f"{label}: {count}" for label, count in sorted(answers.others.items())) or "none"
    where = ", ".join(f"{function} {count}" for function, count in answers.conflicts_by_function.most_common())
    return (
        f"Database answers to the service's containers during the run: {answers.commits} commits; "
        f"write conflicts (112): {answers.write_conflicts}{f' ({where})' if where else ''}; "
        f"NoSuchTransaction (251): {answers.no_such_transaction}; other failed answers: {others}."
    )
