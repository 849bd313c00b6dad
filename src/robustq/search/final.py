"""A policy's final model (a search's best policy, a compare row): quantized from the FP model
and fine-tuned by the search's own episode recipe (``recipe=None``: HAQ's short fine-tune, what
the episodes scored) or by a named QAT recipe of ``quant.workflow`` (``"deploy"``: several epochs
over the full training split with distillation from the FP model, issue 17), which runs as a
``robustq quantize`` run in its own directory and so resumes per epoch after a kill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from robustq.models.train import TrainReporter
from robustq.quant.checkpoint import load_model
from robustq.quant.kernels import quant_kernels
from robustq.quant.policy import Policy
from robustq.quant.workflow import QAT_RECIPES, QuantizeJob, recipe_method, run_quantize
from robustq.search.evaluate import build_quantized
from robustq.utils.errors import RobustqError
from robustq.utils.progress import Phase

# None: the episode recipe (``search.evaluate.finetune``); a name: ``quant.workflow.QAT_RECIPES``
FINAL_RECIPES = (None, *QAT_RECIPES)


def check_final_recipe(recipe: str | None) -> None:
    if recipe not in FINAL_RECIPES:
        raise RobustqError(f"unknown final recipe {recipe!r} (known: "
                           f"{', '.join(str(r) for r in QAT_RECIPES)}, or none for the "
                           "episodes' own fine-tune)")


class PhaseReporter(TrainReporter):
    """A QAT run's epochs and steps as a progress phase: done/total in optimizer steps, the
    label naming the epoch, the last loss and epoch accuracy as fields."""

    def __init__(self, phase: Phase, label: str) -> None:
        self.phase, self.label = phase, label

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:     # epoch from 0
        self.phase.update(done=epoch * steps, total=epochs * steps,
                          label=f"{self.label}: epoch {epoch + 1}/{epochs}")

    def step(self, loss: float) -> None:
        self.phase.advance(loss=round(loss, 4))

    def end_epoch(self, record: dict[str, Any]) -> None:
        acc = record.get("noisy_accuracy", record.get("test_accuracy"))
        if acc is not None:
            self.phase.update(accuracy=acc)


def final_model(search: Any, policy: Policy, qat_dir: Path, recipe: str | None,
                phase: Phase | None = None) -> nn.Module:
    """``policy`` quantized from ``search``'s FP model (method, data, sigma, seed and device
    of ``search``, a ``search.Search``; no method: the recipe's own, ``recipe_method``: the
    episodes' lsq, deploy's lsq_mse) and fine-tuned by ``recipe`` on the fake-quantizer
    kernels of ``search.cfg.quant_kernels``. A named recipe runs in
    ``qat_dir`` (its policy file beside it): a finished run there is read back, a killed one
    resumed, one of another policy refused."""
    check_final_recipe(recipe)
    c = search.cfg
    method = c.method or recipe_method(recipe)
    if recipe is None:
        with quant_kernels(c.quant_kernels):
            return build_quantized(search.fp, policy, method, search.ft_ds, search.sigma,
                                   c.finetune_lr, c.seed)
    done = saved_model(qat_dir / "model.safetensors", policy)
    if done is not None:
        return done
    policy_file = qat_dir.with_name(qat_dir.name + ".policy.json")
    policy.save(policy_file)
    job = QuantizeJob.from_recipe(recipe, checkpoint=c.checkpoint, data=c.data,
                                  policy=str(policy_file), method=method, sigma=search.sigma,
                                  seed=c.seed, device=search.device.type,
                                  quant_kernels=c.quant_kernels)
    resume = (qat_dir / "run.json").is_file()
    reporter = None if phase is None else PhaseReporter(phase, phase.label)
    return run_quantize(job, qat_dir, resume=resume, reporter=reporter).model.eval()


def saved_model(path: Path, policy: Policy) -> nn.Module | None:
    """The quantized model saved at ``path`` (eval mode), None if there is none; refused if it
    holds another policy (a resumed run must continue the very model it started)."""
    if not path.is_file():
        return None
    model, meta = load_model(path)
    if Policy.from_json(meta["quant"]["policy"]) != policy:
        raise RobustqError(f"{path}: holds a model of another policy; use a new --out")
    return model.eval()
