"""``export_onnx(checkpoint, out)``: an FP or fake-quantized robustq model as an ONNX file that
ONNX Runtime runs, quantized layers in int8/uint8 kernels, computing the certified function.

A quantized layer becomes QDQ. Its input activation is ``QuantizeLinear -> DequantizeLinear`` on
the layer's own grid (uint8 for unsigned grids, int8 for signed); a b-bit grid narrower than the
type is clamped by an integer-domain ``Clip`` between Q and DQ, which keeps the b-bit saturation
and lets ONNX Runtime fuse the convolution into ``QLinearConv``. Its weight is stored as int8
integers with a per-output-channel scale, into which the following BatchNorm is folded
(k * s * gamma / sd: the same integers k, another scale). FP layers stay float.

The integers are those of the fake-quantized model. What differs: float rounding, and the int32
bias that ONNX Runtime's integer convolution needs (step: input step x weight step; the exporter
puts both on the finest int8 grid that holds the same values to make it small). A value within
that difference of a grid cell's edge moves one level, so predictions on noisy inputs agree on
~98-99% for a 4- or 8-bit ResNet-20 (docs/benchmarks.md, "Deployment"), not on all of them:
certify the deployed file itself (``robustq certify model.onnx``, plain or IRS).
Metadata: the card, sigma, method, policy and the source file's SHA-256.

Unsupported (refused with a clear error): a grid with a non-integer zero point (DoReFa on signed
activations), weights whose integers do not fit int8 (DoReFa 8-bit: odd levels -255..255).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from robustq.models.checkpoint import ModelCard
from robustq.quant.layers import QuantConv2d, QuantLayer, QuantLinear
from robustq.quant.quantizers import FP_BITS, DoReFaWeight, Grid, LSQQuantizer, MinMaxWeight
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write, file_sha256

META_KEY = "robustq"
OPSET = 17


def weight_scale(q: QuantLayer) -> torch.Tensor:
    """Per-output-channel step of ``q``'s weight grid: its quantized weight is an integer
    multiple of it."""
    wq, w = q.weight_quantizer, q.weight.detach()
    out = w.shape[0]
    if isinstance(wq, LSQQuantizer):
        s = wq.current_step().detach().abs().expand(out)
    elif isinstance(wq, MinMaxWeight):
        m = w.abs().flatten(1).amax(1) if wq.per_channel else w.abs().max().expand(out)
        s = m.clamp(min=1e-12) / (2 ** (wq.bits - 1) - 1)
    elif isinstance(wq, DoReFaWeight):
        m = w.abs().max() if wq.keep_scale else torch.ones(())
        s = (m / (2 ** wq.bits - 1)).expand(out)
    else:
        raise RobustqError(f"cannot export weights quantized by {type(wq).__name__}")
    return s.clone().float()


def act_qdq(grid: Grid, layer: str) -> dict[str, Any]:
    """The ONNX form of an activation grid: scale, zero point, integer type range, clamp."""
    if grid.zero != int(grid.zero):
        raise RobustqError(f"layer {layer!r}: its activation grid has a non-integer zero point "
                           f"({grid.zero}; DoReFa on signed inputs), which int8 cannot express")
    lo, hi, zp = int(grid.lo), int(grid.hi), int(grid.zero)
    t_lo, t_hi = (0, 255) if lo >= 0 else (-128, 127)
    if lo < t_lo or hi > t_hi:
        raise RobustqError(f"layer {layer!r}: activation levels [{lo}, {hi}] exceed 8 bits")
    refine = 1                  # the largest power of 2 that keeps every level inside the type
    while (lo - zp) * refine * 2 + zp * refine * 2 >= t_lo and (hi - zp) * refine * 2 \
            + zp * refine * 2 <= t_hi:
        refine *= 2
    return {"scale": float(grid.scale), "zero": zp, "type": (t_lo, t_hi), "levels": (lo, hi),
            "refine": refine}


class ExportLayer(nn.Module):
    """A conv or linear layer in exportable QDQ form (see the module docstring)."""

    def __init__(self, q: nn.Module, name: str) -> None:
        super().__init__()
        conv = isinstance(q, nn.Conv2d)
        self.conv_args = (q.stride, q.padding, q.dilation, q.groups) if conv else None
        self.act = (act_qdq(q.act_quantizer.grid(), name)
                    if isinstance(q, QuantLayer) and q.a_bits < FP_BITS else None)
        quant_w = isinstance(q, QuantLayer) and q.w_bits < FP_BITS
        with torch.no_grad():
            w = q.quantized_weight().detach() if isinstance(q, QuantLayer) else q.weight.detach()
            self.register_buffer("w_scale", weight_scale(q) if quant_w else None)
            self.register_buffer("weight", w.clone())
            bias = q.bias.detach().clone() if q.bias is not None else torch.zeros(w.shape[0])
            self.register_buffer("bias", bias)
        self.name = name
        self.register_buffer("w_export", None)
        if quant_w:
            self.refresh_export_scale()    # refuses weights that are not int8 multiples now

    def integers(self) -> torch.Tensor:
        shape = (-1,) + (1,) * (self.weight.ndim - 1)
        k = torch.round(self.weight / self.w_scale.view(shape))
        err = (k * self.w_scale.view(shape) - self.weight).abs().max()
        if float(err) > 1e-4 * float(self.weight.abs().max().clamp(min=1e-12)) or \
                float(k.min()) < -128 or float(k.max()) > 127:
            raise RobustqError(f"layer {self.name!r}: its quantized weights are not int8 "
                               "multiples of one scale per channel (DoReFa 8-bit weights take "
                               "odd levels -255..255); export supports up to 7 bits there")
        return k

    def refresh_export_scale(self) -> None:
        """Per channel, the weight step divided by the largest power of 2 that keeps the
        integers k m inside int8: the same weights on a finer int8 grid, so the int32 bias that
        ONNX Runtime's integer convolution needs (step: input step x weight step) is m times
        finer too (a coarse bias step moves values across activation-grid edges)."""
        k = self.integers().abs().flatten(1).amax(1).clamp(min=1)
        m = torch.exp2(torch.floor(torch.log2(127 / k)))
        self.w_export = self.w_scale / m

    @torch.no_grad()
    def fold_bn(self, bn: nn.BatchNorm2d) -> None:
        """Fold an eval-mode BatchNorm that follows this layer into its scale and bias."""
        g = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shape = (-1,) + (1,) * (self.weight.ndim - 1)
        if self.w_scale is not None:
            k = self.integers() * torch.sign(g).view(shape)       # negative gamma: flip k
            self.w_scale = self.w_scale * g.abs().clamp(min=1e-12)
            self.weight = k * self.w_scale.view(shape)
            self.refresh_export_scale()
        else:
            self.weight = self.weight * g.view(shape)
        self.bias = (self.bias - bn.running_mean) * g + bn.bias

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act
        t_lo, t_hi = a["type"]
        x = torch.fake_quantize_per_tensor_affine(x, a["scale"], a["zero"], t_lo, t_hi)
        lo, hi = a["levels"]
        if (lo, hi) != (t_lo, t_hi):           # rewritten to an integer Clip after export
            x = torch.clamp(x, (lo - a["zero"]) * a["scale"], (hi - a["zero"]) * a["scale"])
            x = torch.fake_quantize_per_tensor_affine(x, a["scale"], a["zero"], t_lo, t_hi)
            # the same values on an m times finer int8 grid (every m-th level): the conv runs
            # on these integers, so ONNX Runtime's int32 bias has an m times finer step
            m = a["refine"]
            if m > 1:
                x = torch.fake_quantize_per_tensor_affine(x, a["scale"] / m, a["zero"] * m,
                                                          t_lo, t_hi)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act is not None:
            x = self.quantize_input(x)
        w = self.weight
        if self.w_scale is not None:
            zeros = torch.zeros(w.shape[0], dtype=torch.int32)
            w = torch.fake_quantize_per_channel_affine(w, self.w_export, zeros, 0, -128, 127)
        if self.conv_args is None:
            return F.linear(x, w, self.bias)
        return F.conv2d(x, w, self.bias, *self.conv_args)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, name: str) -> bool:
        return isinstance(m, ExportLayer) or super().is_leaf_module(m, name)


def exportable(model: nn.Module) -> fx.GraphModule:
    """``model`` (FP or fake-quantized, eval) with every conv/linear as an ``ExportLayer`` and
    every BatchNorm that directly follows one folded into it."""
    model = copy.deepcopy(model).eval()
    for name, m in list(model.named_modules()):
        if isinstance(m, QuantConv2d | QuantLinear) or type(m) in (nn.Conv2d, nn.Linear):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, ExportLayer(m, name))
    try:
        gm = fx.GraphModule(model, _Tracer().trace(model))
    except Exception as e:                  # data-dependent control flow, unknown modules
        raise RobustqError(f"cannot export this model: tracing failed ({e})") from None
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        src = node.args[0]
        if (isinstance(src, fx.Node) and src.op == "call_module"
                and isinstance(modules[src.target], ExportLayer) and len(src.users) == 1):
            modules[src.target].fold_bn(modules[node.target])
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    return gm


def _constant(graph, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and name in node.output:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def integer_clips(model) -> int:
    """Rewrite every ``Q -> DQ -> Clip -> Q`` (a b-bit clamp written in float) as ``Q -> Clip``
    on the integers, so ONNX Runtime keeps the int8 convolution; returns how many."""
    from onnx import helper, numpy_helper

    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    replace, drop = {}, set()
    for q2 in g.node:
        clip = producer.get(q2.input[0]) if q2.op_type == "QuantizeLinear" else None
        dq = producer.get(clip.input[0]) if clip is not None and clip.op_type == "Clip" else None
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        scale, zero = _constant(g, q2.input[1]), _constant(g, q2.input[2])
        lo, hi = _constant(g, clip.input[1]), _constant(g, clip.input[2])
        bounds = []
        for value, tag in ((lo, "lo"), (hi, "hi")):
            v = np.array(np.round(value / scale) + zero.astype(np.int64)).astype(zero.dtype)
            bounds.append(numpy_helper.from_array(v.reshape(()), f"{q2.name}_{tag}"))
        g.initializer.extend(bounds)
        replace[id(q2)] = helper.make_node("Clip", [dq.input[0], *(b.name for b in bounds)],
                                           [q2.output[0]], name=f"{q2.name}_integer_clip")
        drop |= {id(clip), id(dq)}
    nodes = [replace.get(id(n), n) for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(nodes)
    return len(replace)


def int8_weights(model) -> int:
    """Replace every ``QuantizeLinear`` of a float initializer (a weight) by the int8
    initializer it computes (round half to even, as ONNX does): the file stores the integers, 4x
    smaller, and ``DequantizeLinear`` reads them directly. Returns how many."""
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    folded, keep = [], []
    for node in g.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in inits:
            keep.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[0]])
        scale, zero = _constant(g, node.input[1]), _constant(g, node.input[2])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.round(w / scale.reshape(shape)) + zero.astype(np.int64).reshape(shape)
        info = np.iinfo(zero.dtype)
        folded.append(numpy_helper.from_array(np.clip(q, info.min, info.max).astype(zero.dtype),
                                              node.output[0]))
    used = {i for n in keep for i in n.input}
    del g.node[:]
    g.node.extend(keep)
    unused = [i for i in g.initializer if i.name not in used]
    for init in unused:
        g.initializer.remove(init)
    g.initializer.extend(folded)
    return len(folded)


def _onnx():
    try:
        import onnx
    except ImportError:
        raise RobustqError("export needs onnx and onnxruntime: pip install 'robustq[deploy]'") \
            from None
    return onnx


def export_onnx(checkpoint: str | Path, out: str | Path,
                int8_calibration: torch.Tensor | None = None) -> dict[str, Any]:
    """Write ``checkpoint`` (FP or quantized) as ONNX to ``out`` (atomically); returns the
    metadata stored in the file (``robustq`` key of ``metadata_props``).

    With ``int8_calibration`` (images, N x C x H x W in [0, 1], noisy as the model sees them),
    an FP checkpoint is statically quantized to int8 by ONNX Runtime (``quantize_onnx_int8``):
    a different classifier, faster, which the metadata names."""
    onnx = _onnx()
    from robustq.quant.checkpoint import load_model

    model, meta = load_model(checkpoint)
    if int8_calibration is not None and meta.get("quant"):
        raise RobustqError(f"{checkpoint}: a quantized checkpoint exports its own int8 layers; "
                           "static int8 quantization is for FP checkpoints")
    card = ModelCard.from_json(meta["card"])
    gm = exportable(model)
    example = torch.rand(2, card.in_channels, *card.input_size)
    info = {"card": card.to_json(), "sigma": meta.get("sigma"), "quant": meta.get("quant"),
            "source": {"path": str(Path(checkpoint).resolve()),
                       "sha256": file_sha256(checkpoint)}, "opset": OPSET}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(gm, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        proto = onnx.load(str(tmp))
        info["integer_clips"] = integer_clips(proto)
        info["int8_weights"] = int8_weights(proto)
        onnx.helper.set_model_props(proto, {META_KEY: json.dumps(info)})
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        if int8_calibration is not None:
            info["int8"] = quantize_onnx_int8(tmp, int8_calibration)
            proto = onnx.load(str(tmp))
            onnx.helper.set_model_props(proto, {META_KEY: json.dumps(info)})
            onnx.save(proto, str(tmp))

    try:
        atomic_write(out, write)
    except RobustqError:
        raise
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as e:
        raise RobustqError(f"{checkpoint}: cannot export to ONNX ({e})") from None
    return info


def quantize_onnx_int8(path: Path, calibration: torch.Tensor, batch: int = 64) -> dict[str, Any]:
    """Statically quantize the fp32 ONNX file at ``path`` in place with ONNX Runtime's own
    quantizer (QDQ, int8 weights per output channel, uint8 activations with min-max ranges on
    ``calibration``): every convolution, addition and the classifier head then run in int8
    kernels. Returns what was done (recorded in the metadata)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x = calibration.detach().float().contiguous().numpy()
    if x.ndim != 4 or not len(x):
        raise RobustqError(f"int8 calibration needs a batch of images, got shape {x.shape}")

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"images": x[i:i + batch]} for i in range(0, len(x), batch)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    pre = path.with_name(path.name + ".pre.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(path), str(pre))
            quantize_static(str(pre), str(path), Batches(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
    finally:
        pre.unlink(missing_ok=True)
    return {"by": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "weights": "int8 per output channel", "activations": "uint8, min-max calibrated",
            "calibration_images": len(x)}


@torch.inference_mode()
def agreement(a: nn.Module, b: nn.Module, x: torch.Tensor, batch: int = 500) -> float:
    """Fraction of inputs ``x`` on which ``a`` and ``b`` predict the same class."""
    same = 0
    for i in range(0, len(x), batch):
        same += int((a(x[i:i + batch]).argmax(1) == b(x[i:i + batch]).argmax(1)).sum())
    return same / max(len(x), 1)
