"""Certification: randomized smoothing (certify, predict), incremental certification (IRS),
and certified-robustness metrics."""

from robustq.certify.config import CertifyConfig
from robustq.certify.irs import CacheEntry, IRSCertificate, estimate_zeta, irs_certify_many
from robustq.certify.metrics import (
    PairedDifference,
    accuracy_curve,
    certified_accuracy,
    paired_difference,
    summarize,
)
from robustq.certify.smooth import ABSTAIN, Certificate, Smooth

__all__ = [
    "ABSTAIN",
    "CacheEntry",
    "CertifyConfig",
    "Certificate",
    "IRSCertificate",
    "PairedDifference",
    "Smooth",
    "accuracy_curve",
    "certified_accuracy",
    "estimate_zeta",
    "irs_certify_many",
    "paired_difference",
    "summarize",
]
