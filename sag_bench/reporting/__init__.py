"""Reporting: the paper's tables rendered from a run's results (CSV, Markdown, LaTeX) and the plots beside them."""
