"""Rendering of results: tables (Markdown, LaTeX, CSV) and plots."""
