"""Certification: randomized smoothing (certify, predict), incremental certification (IRS),
and certified-robustness metrics."""

from robustq.certify.irs import CacheEntry, IRSCertificate, estimate_zeta, irs_certify_many
from robustq.certify.metrics import accuracy_curve, certified_accuracy, summarize
from robustq.certify.smooth import ABSTAIN, Certificate, Smooth

__all__ = [
    "ABSTAIN",
    "CacheEntry",
    "Certificate",
    "IRSCertificate",
    "Smooth",
    "accuracy_curve",
    "certified_accuracy",
    "estimate_zeta",
    "irs_certify_many",
    "summarize",
]
