"""Mixed-precision policies: per-layer (weight bits, activation bits), keyed by module name.

A policy is plain data that a person can read and edit (JSON or YAML), validated against a
model: every quantizable layer must appear, no unknown names, bits in [2, 8] or 32 (FP).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from torch import nn

from robustq.quant.layers import quantizable_layers
from robustq.utils.config import parse_json_or_yaml
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_text

FP = 32
ALLOWED_BITS = (2, 3, 4, 5, 6, 7, 8, FP)


@dataclass(frozen=True)
class LayerBits:
    w: int
    a: int


def _check_bits(layer: str, kind: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RobustqError(f"layer {layer!r}: {kind} bits must be an integer, got {value!r}")
    if value not in ALLOWED_BITS:
        raise RobustqError(f"layer {layer!r}: {kind} bits must lie in [2, 8] or be 32 (FP), "
                           f"got {value}")
    return value


class Policy(Mapping[str, LayerBits]):
    """An immutable mapping ``layer name -> LayerBits(w, a)``, in model order."""

    def __init__(self, bits: Mapping[str, LayerBits | tuple[int, int] | Mapping]) -> None:
        parsed: dict[str, LayerBits] = {}
        for name, b in bits.items():
            if isinstance(b, LayerBits):
                w, a = b.w, b.a
            elif isinstance(b, Mapping):
                extra = set(b) - {"w", "a"}
                if extra or not {"w", "a"} <= set(b):
                    raise RobustqError(f"layer {name!r}: expected keys 'w' and 'a', got "
                                       f"{sorted(b)}")
                w, a = b["w"], b["a"]
            elif isinstance(b, list | tuple) and len(b) == 2:
                w, a = b
            else:
                raise RobustqError(f"layer {name!r}: expected {{w: bits, a: bits}}, got {b!r}")
            parsed[str(name)] = LayerBits(_check_bits(name, "weight", w),
                                          _check_bits(name, "activation", a))
        self._bits = parsed

    def __getitem__(self, name: str) -> LayerBits:
        return self._bits[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._bits)

    def __len__(self) -> int:
        return len(self._bits)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self._bits == other._bits

    def __repr__(self) -> str:
        return f"Policy({ {k: (v.w, v.a) for k, v in self._bits.items()} })"

    def validate(self, model: nn.Module) -> Policy:
        """Check that the policy names exactly the model's quantizable layers."""
        layers = list(quantizable_layers(model))
        unknown = [n for n in self._bits if n not in layers]
        if unknown:
            raise RobustqError(f"policy names unknown layer {unknown[0]!r}; the model's layers "
                               f"are: {', '.join(layers)}")
        missing = [n for n in layers if n not in self._bits]
        if missing:
            raise RobustqError(f"policy is missing layer {missing[0]!r}"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return Policy({n: self._bits[n] for n in layers})

    # --------------------------------------------------------------------- (de)serialization
    def to_json(self) -> dict[str, dict[str, int]]:
        return {n: {"w": b.w, "a": b.a} for n, b in self._bits.items()}

    @classmethod
    def from_json(cls, d: object) -> Policy:
        if not isinstance(d, Mapping):
            raise RobustqError(f"a policy is a mapping of layer name to {{w, a}}, got "
                               f"{type(d).__name__}")
        layers = d.get("layers", d) if "layers" in d else d
        return cls(layers)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            text = yaml.safe_dump({"layers": self.to_json()}, sort_keys=False,
                                  default_flow_style=None)
        else:
            text = json.dumps({"layers": self.to_json()}, indent=1) + "\n"
        return atomic_write_text(path, text)

    @classmethod
    def load(cls, path: str | Path, model: nn.Module | None = None) -> Policy:
        """Read a JSON or YAML policy file (UTF-8; duplicate keys refused) and, given a
        ``model``, validate it against the model's layers; every error names the file."""
        path = Path(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as e:
            raise RobustqError(f"{path}: cannot read policy ({e.strerror})") from None
        except UnicodeDecodeError as e:
            raise RobustqError(f"{path}: not UTF-8 text (byte {e.start}); a policy is a JSON or "
                               "YAML text file") from None
        data = parse_json_or_yaml(text, path)
        try:
            policy = cls.from_json(data)
            return policy.validate(model) if model is not None else policy
        except RobustqError as e:
            raise RobustqError(f"{path}: {e}") from None


def uniform_policy(model: nn.Module, w_bits: int, a_bits: int, first_last_bits: int | None = 8,
                   first_input_fp: bool = True) -> Policy:
    """Every layer at (w_bits, a_bits); optionally first/last layers at ``first_last_bits``
    and the first layer's input (the image, already 8-bit) left in FP."""
    names = list(quantizable_layers(model))
    bits = {n: LayerBits(w_bits, a_bits) for n in names}
    if first_last_bits is not None and names:
        bits[names[0]] = LayerBits(first_last_bits, first_last_bits)
        bits[names[-1]] = LayerBits(first_last_bits, first_last_bits)
    if first_input_fp and names:
        bits[names[0]] = LayerBits(bits[names[0]].w, FP)
    return Policy(bits)
