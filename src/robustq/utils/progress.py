"""One progress interface for every long workflow.

A workflow reports *phases*: a label naming the work in progress (updated as the work moves on,
e.g. "episode 3/40: fine-tuning"), a total (None while unknown), a count done and free-form
fields (a running ACR, an ETA in seconds). The library never prints: ``Progress`` itself is
silent, the CLI renders (Rich bars in a terminal, timestamped lines otherwise) and tests count
events (``CountingProgress``).

    with progress.phase("bench units", total=len(plan)) as ph:
        for u in plan:
            ph.update(label=f"{u.name} (running)")
            u.run()
            ph.advance()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Phase:
    """A phase in progress: ``label`` (the work in progress), ``done`` of ``total``."""

    owner: Progress
    label: str
    total: int | None = None
    done: int = 0
    fields: dict[str, Any] = field(default_factory=dict)

    def update(self, done: int | None = None, label: str | None = None,
               total: int | None = None, **fields: Any) -> None:
        if done is not None:
            self.done = done
        if label is not None:
            self.label = label
        if total is not None:
            self.total = total
        self.fields.update(fields)
        self.owner.on_update(self)

    def advance(self, steps: int = 1, **fields: Any) -> None:
        self.update(done=self.done + steps, **fields)


class Progress:
    """Silent base: subclasses override ``on_start`` / ``on_update`` / ``on_end``."""

    @contextmanager
    def phase(self, label: str, total: int | None = None, done: int = 0) -> Iterator[Phase]:
        ph = Phase(self, label, total, done)
        self.on_start(ph)
        try:
            yield ph
        finally:
            self.on_end(ph)

    def on_start(self, phase: Phase) -> None:
        pass

    def on_update(self, phase: Phase) -> None:
        pass

    def on_end(self, phase: Phase) -> None:
        pass


class CountingProgress(Progress):
    """Records every event as ``(event, label, done, total)``: for tests."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int, int | None]] = []

    def on_start(self, phase: Phase) -> None:
        self.events.append(("start", phase.label, phase.done, phase.total))

    def on_update(self, phase: Phase) -> None:
        self.events.append(("update", phase.label, phase.done, phase.total))

    def on_end(self, phase: Phase) -> None:
        self.events.append(("end", phase.label, phase.done, phase.total))

    def labels(self, event: str = "update") -> list[str]:
        return [label for e, label, _, _ in self.events if e == event]


_default: list[Progress] = [Progress()]


def use(progress: Progress) -> None:
    """Make ``progress`` the default for work not given one explicitly (the CLI sets its
    renderer once, so phases deep in the stack, such as a data set's first decode, show too;
    the library's own default is silent)."""
    _default[0] = progress


def silent(progress: Progress | None = None) -> Progress:
    """``progress``, or the default (silent unless ``use`` set one)."""
    return progress if progress is not None else _default[0]


def say_nothing(line: str) -> None:
    """The default ``say`` of the workflows (a line for the user): the library never prints."""
