"""Quantization: mixed-precision fake quantization (minmax, DoReFa, PACT, LSQ), policies,
BitOPs/size cost model, quantized checkpoints."""

from robustq.quant.checkpoint import LoadedModel, load
from robustq.quant.cost import ModelCost, model_cost
from robustq.quant.layers import QuantConv2d, QuantLinear, quantizable_layers
from robustq.quant.policy import FP, LayerBits, Policy, uniform_policy
from robustq.quant.quantize import calibrate, get_policy, quantize, set_policy
from robustq.quant.quantizers import check_method, get_quantizers, list_methods

__all__ = [
    "FP",
    "LayerBits",
    "LoadedModel",
    "ModelCost",
    "Policy",
    "QuantConv2d",
    "QuantLinear",
    "calibrate",
    "check_method",
    "get_policy",
    "get_quantizers",
    "list_methods",
    "load",
    "model_cost",
    "quantizable_layers",
    "quantize",
    "set_policy",
    "uniform_policy",
]
