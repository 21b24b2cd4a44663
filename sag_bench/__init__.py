"""sag-bench: a benchmark for Singing Accompaniment Generation."""

__version__ = "0.1.0"
