"""Cross-cutting helpers used by every stage: atomic files, provenance, seeding, errors."""

from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from robustq.utils.provenance import provenance
from robustq.utils.seeding import seed_everything

__all__ = [
    "RobustqError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "provenance",
    "seed_everything",
]
