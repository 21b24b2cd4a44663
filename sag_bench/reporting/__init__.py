"""Rendering of results: tables (Markdown, LaTeX, CSV), plots and the run report page."""
