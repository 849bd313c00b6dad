import json

import pytest
import torch

from robustq.models import ModelCard, load_checkpoint
from robustq.models.augment import gaussian_noise, random_crop, random_flip
from robustq.models.train import TrainConfig, TrainReporter, fit, lr_at, train
from robustq.utils.errors import RobustqError

CFG = dict(arch="small_cnn", epochs=3, batch_size=16, lr=0.05, sigma=0.1, crop_padding=1,
           flip=True, seed=5, eval_images=32, channels_last=False)


def _card(ds):
    c, h, w = ds.image_shape
    return ModelCard("small_cnn", 2, c, (0.5,) * c, (0.25,) * c, ds.classes, (h, w))


class Kill(TrainReporter):
    """Simulates the process dying right after epoch ``at`` was checkpointed."""

    def __init__(self, at: int) -> None:
        self.at = at

    def end_epoch(self, record):
        if record["epoch"] == self.at:
            raise KeyboardInterrupt


def test_training_learns_and_writes_a_complete_checkpoint(tmp_path, tiny_rgb_dataset):
    card = _card(tiny_rgb_dataset)
    meta = train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset, TrainConfig(**CFG),
                 tmp_path)
    assert meta["accuracy"]["clean_accuracy"] > 0.9
    model, saved = load_checkpoint(tmp_path / "model.safetensors")
    for key in ("card", "sigma", "epochs", "accuracy", "train_config", "provenance"):
        assert key in saved
    assert saved["provenance"]["seed"] == 5 and "torch" in saved["provenance"]["versions"]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]


@pytest.mark.parametrize("options", [{}, {"consistency": 5.0, "consistency_copies": 3}])
def test_resume_after_kill_equals_uninterrupted(tmp_path, tiny_rgb_dataset, options):
    card, cfg = _card(tiny_rgb_dataset), TrainConfig(**{**CFG, **options})
    torch.manual_seed(0)
    full = card.build()
    train(full, card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path / "a")
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path / "b",
              reporter=Kill(at=2))
    assert not (tmp_path / "b" / "model.safetensors").exists()
    torch.manual_seed(123)                      # a fresh process: different initial weights
    resumed = card.build()
    train(resumed, card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path / "b", resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_diverging_run_stops_before_writing_a_non_finite_epoch(tmp_path, tiny_rgb_dataset):
    card, cfg = _card(tiny_rgb_dataset), TrainConfig(**CFG)
    with pytest.raises(KeyboardInterrupt):         # one good epoch is written first
        train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path,
              reporter=Kill(at=1))
    blow_up = lambda m: next(m.parameters()).sum() * float("inf")      # noqa: E731
    with pytest.raises(RobustqError, match="diverged in epoch 2 .*non-finite"):
        train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path,
              resume=True, extra_loss=blow_up)
    assert not (tmp_path / "model.safetensors").exists()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1]
    model = card.build()                           # the kept state is epoch 1's, all finite
    train(model, card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path, resume=True)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_existing_run_needs_resume_and_same_config(tmp_path, tiny_rgb_dataset):
    card, cfg = _card(tiny_rgb_dataset), TrainConfig(**{**CFG, "epochs": 1})
    train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path)
    with pytest.raises(RobustqError, match="pass --resume"):
        train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path)
    with pytest.raises(RobustqError, match="another configuration"):
        train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset,
              TrainConfig(**{**CFG, "epochs": 2, "lr": 0.01}), tmp_path, resume=True)


def test_a_state_written_before_newer_options_existed_resumes(tmp_path, tiny_rgb_dataset):
    from robustq.models.checkpoint import load_tensors, save_tensors
    from robustq.models.train import STATE_FILE

    card, cfg = _card(tiny_rgb_dataset), TrainConfig(**{**CFG, "epochs": 2})
    with pytest.raises(KeyboardInterrupt):
        train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path,
              reporter=Kill(at=1))
    tensors, meta = load_tensors(tmp_path / STATE_FILE)
    for newer in ("distill", "distill_temperature", "consistency", "consistency_copies",
                  "consistency_entropy", "precision"):   # options added after the state was written
        del meta["config"][newer]
    save_tensors(tmp_path / STATE_FILE, tensors, meta)
    done = train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path,
                 resume=True)
    assert done["epochs"] == 2
    with pytest.raises(RobustqError, match="another configuration"):   # set otherwise: refused
        train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset,
              TrainConfig(**{**CFG, "epochs": 2, "distill": 0.5}), tmp_path, resume=True,
              teacher=card.build())


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(sigma=-0.1), dict(schedule="linear"),
                                 dict(batch_size=0), dict(lr=0), dict(consistency=-1.0),
                                 dict(consistency_copies=1), dict(consistency_entropy=-0.5),
                                 dict(precision="fp16")])
def test_config_validation(bad):
    with pytest.raises(RobustqError):
        TrainConfig(**{**CFG, **bad})


def test_config_json_round_trip_refuses_unknown_keys():
    cfg = TrainConfig(**CFG)
    assert TrainConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    with pytest.raises(RobustqError, match="unknown training option"):
        TrainConfig.from_json({**cfg.to_json(), "lrr": 1})


@pytest.mark.parametrize("schedule", ["cosine", "step", "onecycle"])
def test_schedules_decay_to_small_lr(schedule):
    cfg = TrainConfig(schedule=schedule, lr=0.1)
    lrs = [lr_at(cfg, s, 100) for s in range(100)]
    assert max(lrs) <= 0.1 + 1e-12 and lrs[-1] < 0.011 and min(lrs) > 0


def test_augmentations_keep_shape_and_content():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 8, 8)
    crop = random_crop(x, 2, g)
    assert crop.shape == x.shape
    # every crop is a shifted copy: its nonzero part appears in the padded original
    assert torch.equal(random_crop(x, 0, g), x)
    flipped = random_flip(x, g)
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(2)) for f, o in zip(flipped, x,
                                                                              strict=True))
    noise = gaussian_noise(torch.zeros(200_000), 0.25, g)
    assert abs(noise.std().item() - 0.25) < 0.003 and abs(noise.mean().item()) < 0.003


class SwappedTeacher(torch.nn.Module):
    """A teacher that is confidently wrong: it calls bright images dark and dark ones bright."""

    def forward(self, x):
        bright = (x.mean(dim=(1, 2, 3)) > 0.47).float()
        return torch.stack([bright, 1 - bright], 1) * 8.0


def test_distillation_follows_the_teacher_on_the_same_noisy_input(tmp_path, tiny_rgb_dataset):
    card = _card(tiny_rgb_dataset)
    torch.manual_seed(0)
    cfg = TrainConfig(**{**CFG, "epochs": 4, "distill": 1.0, "distill_temperature": 2.0})
    meta = train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path / "kd",
                 teacher=SwappedTeacher())
    assert meta["accuracy"]["clean_accuracy"] < 0.1       # learnt the teacher, not the labels
    assert meta["train_config"]["distill"] == 1.0
    with pytest.raises(RobustqError, match="teacher"):
        train(card.build(), card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path / "x")
    for bad in (float("nan"), -0.1, 1.5):
        with pytest.raises(RobustqError, match="distill"):
            TrainConfig(**{**CFG, "distill": bad})


def test_distillation_loss_is_zero_at_the_teacher_and_positive_elsewhere():
    from robustq.models.train import distillation_loss

    teacher = SwappedTeacher()
    x = torch.rand(16, 3, 8, 8)
    assert float(distillation_loss(teacher(x), teacher, x, 2.0)) == pytest.approx(0, abs=1e-6)
    assert float(distillation_loss(torch.zeros(16, 2), teacher, x, 2.0)) > 0.1


def test_fit_is_trains_loop_without_the_files(tmp_path, tiny_rgb_dataset):
    """fit (in memory) and train (checkpointed) run the same loop: equal weights from equal
    starts; one explicit generator gives another, reproducible, stream."""
    card, cfg = _card(tiny_rgb_dataset), TrainConfig(**CFG)
    torch.manual_seed(0)
    on_disk = card.build()
    train(on_disk, card, tiny_rgb_dataset, tiny_rgb_dataset, cfg, tmp_path)
    models = []
    for gen in (None, torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)):
        torch.manual_seed(0)
        models.append(card.build())
        records = fit(models[-1], tiny_rgb_dataset, cfg, generator=gen)
        assert [r["epoch"] for r in records] == [1, 2, 3]
    in_memory, one_stream, again = (m.state_dict().values() for m in models)
    pairs = list(zip(on_disk.state_dict().values(), in_memory, strict=True))
    assert all(torch.equal(a, b) for a, b in pairs)
    pairs = list(zip(one_stream, again, strict=True))
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not torch.equal(next(models[0].parameters()), next(models[1].parameters()))


def test_bf16_training_follows_fp32_training_and_keeps_float32_weights(tiny_rgb_dataset):
    """The same run in bf16 autocast: each epoch's loss close to float32's (bfloat16 keeps 8
    bits of mantissa, so the steps differ by rounding only), the model as accurate, and the
    weights it leaves float32 (the checkpoint format does not change)."""
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = _card(tiny_rgb_dataset).build()
        records = fit(model, tiny_rgb_dataset, TrainConfig(**{**CFG, "precision": precision}))
        runs[precision] = model, [r["train_loss"] for r in records], records[-1]["train_accuracy"]
    (_, fp32_loss, fp32_acc), (bf16_model, bf16_loss, bf16_acc) = runs["fp32"], runs["bf16"]
    assert bf16_loss == pytest.approx(fp32_loss, rel=0.1, abs=0.02)
    assert bf16_loss[-1] < bf16_loss[0] and bf16_acc >= fp32_acc - 0.1
    assert {p.dtype for p in bf16_model.parameters()} == {torch.float32}


def test_constant_schedule_and_plain_momentum_round_trip():
    cfg = TrainConfig(schedule="constant", lr=0.02, nesterov=False)
    assert {lr_at(cfg, s, 50) for s in range(50)} == {0.02}
    assert TrainConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg


def test_an_earlier_run_is_continued_only_when_asked(tmp_path):
    from robustq.models.train import STATE_FILE, refuse_unasked_resume
    refuse_unasked_resume(tmp_path, resume=False)          # nothing there yet
    (tmp_path / STATE_FILE).write_bytes(b"")
    refuse_unasked_resume(tmp_path, resume=True)
    with pytest.raises(RobustqError, match="earlier run; pass --resume"):
        refuse_unasked_resume(tmp_path, resume=False)


def test_per_image_correctness_is_what_evaluate_counts(tiny_rgb_dataset):
    from robustq.models import get_model
    from robustq.models.evaluate import correct_per_image, evaluate

    torch.manual_seed(0)
    model = get_model("small_cnn", 2, 3)
    x, y = tiny_rgb_dataset.tensors(slice(0, len(tiny_rgb_dataset)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):                            # a few steps: predictions that noise can flip
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    ev = evaluate(model, tiny_rgb_dataset, sigma=0.5, batch_size=16, seed=3)
    clean, noisy = correct_per_image(model, tiny_rgb_dataset, 0.5, seed=3, batch_size=16)
    assert clean.shape == noisy.shape == (len(tiny_rgb_dataset),)
    assert clean.float().mean().item() == ev["clean_accuracy"]
    assert noisy.float().mean().item() == ev["noisy_accuracy"]
    again = correct_per_image(model, tiny_rgb_dataset, 0.5, seed=3, batch_size=64)[1]
    assert torch.equal(noisy, again)              # the noise of an image: its seed and position
    assert not torch.equal(noisy, correct_per_image(model, tiny_rgb_dataset, 0.5, seed=4)[1])


def test_consistency_loss_is_its_definition():
    """lambda * mean_c KL(p || p_c) + eta * H(p), p the mean of the copies' softmax, computed
    here copy by copy with torch's own KL; zero for identical copies when eta = 0."""
    import torch.nn.functional as F

    from robustq.models.train import consistency_loss

    torch.manual_seed(0)
    m, b, k = 3, 5, 4
    logits = torch.randn(m * b, k) * 2
    probs = [F.softmax(logits[c * b:(c + 1) * b], 1) for c in range(m)]
    mean_p = sum(probs) / m
    kl = sum(F.kl_div(p.log(), mean_p, reduction="batchmean") for p in probs) / m
    entropy = -(mean_p * mean_p.log()).sum(1).mean()
    got = consistency_loss(logits, m, 10.0, 0.5)
    assert float(got) == pytest.approx(float(10.0 * kl + 0.5 * entropy), rel=1e-5)
    same = torch.randn(b, k).repeat(m, 1)
    assert float(consistency_loss(same, m, 10.0, 0.0)) == pytest.approx(0, abs=1e-6)
    assert float(consistency_loss(logits, m, 10.0, 0.0)) > 0



def _spread_and_accuracy(model, ds, sigma: float, draws: int = 16) -> tuple[float, float]:
    """(mean KL of each noisy copy's softmax from the copies' mean, accuracy over the copies),
    on ``draws`` fresh noisy copies of every image (seed 99: draws no training step saw)."""
    from robustq.models.train import consistency_loss

    x, y = ds.tensors()
    g = torch.Generator().manual_seed(99)
    model.eval()
    with torch.no_grad():
        logits = model(gaussian_noise(x.repeat(draws, 1, 1, 1), sigma, g))
    accuracy = float((logits.argmax(1) == y.repeat(draws)).float().mean())
    return float(consistency_loss(logits, draws, 1.0, 0.0)), accuracy


def test_consistency_training_makes_predictions_agree_on_unseen_noise():
    """Paired over 10 seeds (same initialization, data order and noise but for the extra
    copies): a model fine-tuned with the regularizer varies less across noise draws it never
    saw, without losing accuracy. Its gradient estimates the expected spread's gradient, so it
    must help on fresh noise, not only on the training draws."""
    import numpy as np

    from robustq.data import ImageDataset

    rng = np.random.default_rng(0)
    labels = np.arange(64) % 2
    imgs = np.clip(np.where(labels[:, None, None, None] == 1, 188, 68)
                   + rng.normal(0, 20, (64, 8, 8, 3)), 0, 255).astype(np.uint8)
    ds = ImageDataset(imgs, labels.astype(np.int64), ("dark", "bright"), "tiny", "train")
    card = _card(ds)
    ratios, accuracy = [], {0.0: [], 10.0: []}
    for seed in range(10):
        spread = {}
        for lam in (0.0, 10.0):
            torch.manual_seed(seed)
            model = card.build()
            fit(model, ds, TrainConfig(arch="small_cnn", epochs=5, batch_size=32, lr=0.05,
                                       sigma=0.5, crop_padding=0, flip=False, seed=seed,
                                       channels_last=False, consistency=lam))
            spread[lam], acc = _spread_and_accuracy(model, ds, 0.5)
            accuracy[lam].append(acc)
        ratios.append(spread[10.0] / spread[0.0])
    assert float(np.median(ratios)) < 0.6 and sum(r < 1 for r in ratios) >= 7, ratios
    assert np.mean(accuracy[10.0]) >= np.mean(accuracy[0.0]) - 0.02, accuracy
