"""Rendering of results: Tables 1-3 (Markdown, LaTeX, CSV), plots and the run report page."""
