"""Docs drift: every registered class documents its arguments."""
import inspect
import re

import pytest

import mmseg_ood  # noqa: F401
from mmseg.registry import DATASETS, HOOKS, METRICS, MODELS
from mmseg_ood.scorers import OOD_SCORERS


def ours(registry):
    return {
        n: c
        for n, c in registry.module_dict.items()
        if getattr(c, '__module__', '').startswith('mmseg_ood')
    }


CLASSES = {}
for reg in (DATASETS, HOOKS, METRICS, MODELS, OOD_SCORERS):
    CLASSES.update(ours(reg))
NEED_REFERENCES = set(ours(METRICS)) | set(OOD_SCORERS.module_dict) | {
    n for n in ours(MODELS) if n.endswith(('Loss', 'Head'))
} | {'OutlierMixDataset'}


def args_section(doc):
    m = re.search(r'^Args:\n(.*?)(?:^\S|\Z)', doc, re.S | re.M)
    return m.group(1) if m else ''


@pytest.mark.parametrize('name', sorted(CLASSES))
def test_documented_args_match_signature(name):
    cls = CLASSES[name]
    doc = inspect.getdoc(cls) or ''
    assert doc, f'{name} has no docstring'
    own = [
        p.name for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != 'self' and p.kind not in (p.VAR_POSITIONAL,
                                               p.VAR_KEYWORD)
    ]
    # (unwrapped: strict_arguments wraps an inherited __init__ too)
    defined_here = inspect.unwrap(cls.__init__).__qualname__.split(
        '.')[0] == cls.__name__
    if not defined_here or 'img_suffix' in own:
        return  # inherited signature (documented upstream) or mmseg dataset
    section = args_section(doc)
    documented = set()
    for entry in re.findall(r'^    (\w+(?: / \w+)*):', section, re.M):
        documented |= set(entry.split(' / '))
    for p in own:
        assert p in documented, f'{name}: argument `{p}` is not in Args'
    for d in documented:
        assert d in own, f'{name}: Args documents `{d}`, not an argument'


@pytest.mark.parametrize('name', sorted(NEED_REFERENCES))
def test_references_section(name):
    assert 'References:' in inspect.getdoc(CLASSES[name]), name
