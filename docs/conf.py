"""Sphinx configuration: MyST Markdown pages, furo theme, API reference from docstrings."""

from importlib import metadata

project = "fine-tune-ckpt"
author = "fine_tune_ckpt developers"
release = metadata.version("fine-tune-ckpt")
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "examples", "README.md"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"fine-tune-ckpt {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
# No network in the build: intersphinx would fetch inventories, so it maps nothing.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
# The records have an attribute named `object` (as on the wire), so every `object` in a
# signature matches two targets. "ref.python" is exactly that ambiguity warning.
suppress_warnings = ["ref.python"]
