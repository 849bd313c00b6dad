"""robustq: small and provably robust neural networks.

Stages, data flowing one way: ``data -> models -> quant -> certify -> search -> bench -> report``,
with ``cli`` on top. Importing robustq has no side effects.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``robustq.load``: the one loader for FP, quantized and exported models, imported on first
    use (``import robustq`` stays cheap)."""
    if name in ("load", "LoadedModel"):
        from robustq.quant import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'robustq' has no attribute {name!r}")
