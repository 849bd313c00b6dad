"""Empirical robustness benchmark of quantized models (RobustMQ, spec 04)."""
