"""Sphinx configuration of the mmseg_ood documentation.

Build with ``make docs`` (warnings are errors) or
``python -m sphinx -W --keep-going -b html docs/en docs/_build/html``.
The pages are Markdown, read by myst-parser, as in MMSegmentation's docs;
the API reference is generated from the docstrings (autodoc + napoleon,
Google style).
"""
import os
import os.path as osp
import sys

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(osp.dirname(HERE)))  # the repository
# pages load configs with ${MMSEG_OOD_DATA}: any value will do for a build
os.environ.setdefault('MMSEG_OOD_DATA', 'data/synthetic')

from mmseg_ood.version import __version__  # noqa: E402

project = 'mmseg_ood'
author = 'mmseg_ood contributors'
copyright = '2026, mmseg_ood contributors'
version = release = __version__

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
]
source_suffix = {'.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build']
templates_path = []

# Markdown: $...$ and $$...$$ math, ::: fences, definition lists, and
# anchors for headings down to ### so pages can link into each other.
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence',
                          'deflist', 'fieldlist']
myst_heading_anchors = 3

# API reference: Google-style docstrings; members in source order.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [('References', 'notes_style')]
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {'members': True, 'show-inheritance': True}
# torch, mmengine and mmseg are real imports (the package registers into
# their registries on import); nothing is mocked.

html_theme = 'furo'
html_title = f'mmseg_ood {release}'
html_static_path = ['_static']
# no network at build or read time: MathJax is the only script furo loads
# from a CDN, and it is used only on pages with math.
