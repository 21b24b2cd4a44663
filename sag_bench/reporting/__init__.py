"""Human-readable outputs of a run."""
