"""Mixed-precision policy search: ARQ (certified-robustness reward via IRS), HAQ, random and
uniform baselines (spec 03)."""
