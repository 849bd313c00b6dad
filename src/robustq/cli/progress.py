"""Rich progress display for training."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from robustq.cli.common import console
from robustq.models.train import TrainReporter


class RichTrainReporter(TrainReporter):
    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.3f}"),
                                 TimeRemainingColumn(), console=console, transient=True)
        self.task = None

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, loss=0.0)

    def step(self, loss: float) -> None:
        self.progress.update(self.task, advance=1, loss=loss)

    def end_epoch(self, record: dict[str, Any]) -> None:
        self.progress.remove_task(self.task)
        self.progress.stop()
        parts = [f"epoch {record['epoch']}", f"loss {record['train_loss']:.4f}",
                 f"train acc {record['train_accuracy']:.4f}"]
        if record.get("test_clean_accuracy") is not None:
            parts.append(f"test acc {record['test_clean_accuracy']:.4f}")
        if record.get("test_noisy_accuracy") is not None:
            parts.append(f"noisy acc {record['test_noisy_accuracy']:.4f}")
        parts.append(f"{record['epoch_s']:.0f}s")
        console.print(" | ".join(parts))
