"""robustq: small and provably robust neural networks.

Stages, data flowing one way: ``data -> models -> quant -> certify -> search -> bench -> report``,
with ``cli`` on top. Importing robustq has no side effects.
"""

__version__ = "0.1.0"
