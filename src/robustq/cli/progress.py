"""How the CLI shows progress: ``RichTrainReporter`` for training epochs, and a workflow's
``robustq.utils.progress`` events as Rich bars in a terminal or timestamped lines otherwise (a
log file, CI), at most one line per ``PLAIN_EVERY_S`` seconds per phase besides label changes."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from robustq.cli.common import console
from robustq.models.train import TrainReporter
from robustq.utils.progress import Phase
from robustq.utils.progress import Progress as Events

PLAIN_EVERY_S = 30.0


class RichTrainReporter(TrainReporter):
    """Training epochs on ``out``: a bar per epoch on a terminal; otherwise (a log file, CI) a
    timestamped line at most every ``every_s`` seconds within an epoch. Either way one line per
    finished epoch."""

    def __init__(self, out: Console = console, every_s: float | None = None) -> None:
        self.console, self.every_s = out, PLAIN_EVERY_S if every_s is None else every_s
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.3f}"),
                                 TimeRemainingColumn(), console=out, transient=True) \
            if out.is_terminal else None
        self.task = None
        self.epoch = self.steps = self.done = 0
        self.last = 0.0

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.epoch, self.epochs, self.steps, self.done = epoch, epochs, steps, 0
        self.last = time.monotonic()
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps,
                                               loss=0.0)

    def step(self, loss: float) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress.update(self.task, advance=1, loss=loss)
        elif time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            self.console.print(f"{time.strftime('%H:%M:%S')} epoch {self.epoch + 1}/{self.epochs}"
                               f" step {self.done}/{self.steps} (loss {loss:.3f})",
                               highlight=False, soft_wrap=True)

    def end_epoch(self, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.remove_task(self.task)
            self.progress.stop()
        parts = [f"epoch {record['epoch']}", f"loss {record['train_loss']:.4f}",
                 f"train acc {record['train_accuracy']:.4f}"]
        if record.get("test_clean_accuracy") is not None:
            parts.append(f"test acc {record['test_clean_accuracy']:.4f}")
        if record.get("test_noisy_accuracy") is not None:
            parts.append(f"noisy acc {record['test_noisy_accuracy']:.4f}")
        parts.append(f"{record['epoch_s']:.0f}s")
        self.console.print(" | ".join(parts))



def _fields(phase: Phase) -> str:
    parts = []
    for key, value in phase.fields.items():
        if key == "eta_s":
            parts.append(f"~{value / 60:.0f} min left")
        elif isinstance(value, float):
            parts.append(f"{key} {value:.3f}")
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts)


class BarProgress(Events):
    """One Rich bar per phase, labelled with the work in progress."""

    def __init__(self, console: Console) -> None:
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                             console=console, transient=True)
        self.tasks: dict[int, int] = {}

    def on_start(self, phase: Phase) -> None:
        if not self.tasks:
            self.bars.start()
        self.tasks[id(phase)] = self.bars.add_task(phase.label, total=phase.total,
                                                   completed=phase.done, info="")

    def on_update(self, phase: Phase) -> None:
        self.bars.update(self.tasks[id(phase)], description=phase.label, total=phase.total,
                         completed=phase.done, info=_fields(phase))

    def on_end(self, phase: Phase) -> None:
        self.bars.remove_task(self.tasks.pop(id(phase)))
        if not self.tasks:
            self.bars.stop()


class LineProgress(Events):
    """Timestamped lines: a phase's first update, every label change, at most one line per
    ``every_s`` seconds otherwise, and its end (if it said anything)."""

    def __init__(self, console: Console, every_s: float = PLAIN_EVERY_S) -> None:
        self.console, self.every_s = console, every_s
        self.last: dict[int, tuple[float, str]] = {}

    def _line(self, phase: Phase, what: str = "") -> None:
        count = f" {phase.done}/{phase.total}" if phase.total is not None else ""
        info = _fields(phase)
        self.console.print(f"{time.strftime('%H:%M:%S')} {what}{phase.label}{count}"
                           + (f" ({info})" if info else ""), highlight=False, soft_wrap=True)
        self.last[id(phase)] = (time.monotonic(), phase.label)

    def on_start(self, phase: Phase) -> None:
        pass               # said with the first update: a run refused while starting says
        #                    only its error

    def on_update(self, phase: Phase) -> None:
        when, label = self.last.get(id(phase), (0.0, ""))
        if label != phase.label or time.monotonic() - when >= self.every_s:
            self._line(phase)

    def on_end(self, phase: Phase) -> None:
        if id(phase) in self.last:
            self._line(phase, "finished: ")
            del self.last[id(phase)]


_renderers: dict[int, Events] = {}


def console_progress(out: Console = console) -> Events:
    """Bars on a terminal, lines otherwise; one renderer per console, so nested phases (a data
    set decoded while a search certifies) share one live display."""
    if id(out) not in _renderers:
        _renderers[id(out)] = BarProgress(out) if out.is_terminal else LineProgress(out)
    return _renderers[id(out)]
