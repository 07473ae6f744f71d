"""Benchmarks: ``nox -s bench`` runs them and writes a Markdown table (never run by pytest)."""
