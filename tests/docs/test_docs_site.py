"""The documentation site builds without a warning, and every class a user
can name in a config (each registered dataset, transform, model part,
metric, hook and scorer) is explained on a page of it."""
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import REPO

DOCS = osp.join(REPO, 'docs', 'en')
#: What ``make docs`` needs: the ``[docs]`` extra of setup.cfg.
DOCS_PACKAGES = ('sphinx', 'myst_parser', 'furo')


def sphinx_build(out):
    """``make docs``'s command, into ``out``: warnings are errors."""
    return [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q',
            '-b', 'html', '-d', osp.join(out, 'doctrees'), DOCS,
            osp.join(out, 'html')]


def test_make_docs_runs_the_same_build():
    with open(osp.join(REPO, 'Makefile'), encoding='utf-8') as f:
        makefile = f.read()
    recipe = re.search(r'^docs:.*\n\t(.*)$', makefile, re.M)
    assert recipe, 'Makefile has no docs target'
    assert '-m sphinx -W --keep-going' in recipe.group(1)
    assert 'docs/en' in recipe.group(1)


def test_the_site_builds_without_a_warning(tmp_path):
    missing = [p for p in DOCS_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f'the docs extra is not installed (no {missing}): '
                    "pip install -e '.[docs]'")
    out = str(tmp_path)
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.run(sphinx_build(out), capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, (
        f'sphinx-build failed ({proc.returncode}):\n{proc.stderr[-8000:]}')
    pages = []
    for root, dirs, files in os.walk(DOCS):
        dirs[:] = [d for d in dirs if not d.startswith(('_', '.'))]
        pages += [osp.relpath(osp.join(root, f), DOCS)[:-3]
                  for f in files if f.endswith('.md')]
    built = [p for p in pages
             if osp.isfile(osp.join(out, 'html', p + '.html'))]
    assert sorted(built) == sorted(pages)
    with open(osp.join(out, 'html', 'api', 'scorers.html'),
              encoding='utf-8') as f:
        api = f.read()
    # autodoc ran: a scorer's docstring is on the page
    assert 'mmseg_ood.scorers.energy.Energy' in api and 'References' in api


def registered_names():
    """``{(registry, name)}`` of every class mmseg_ood registers."""
    import mmseg.registry

    import mmseg_ood  # noqa: F401
    from mmseg_ood.scorers import OOD_SCORERS
    found = set()
    for reg_name, reg in vars(mmseg.registry).items():
        if not hasattr(reg, 'module_dict'):
            continue
        for name, cls in reg.module_dict.items():
            if getattr(cls, '__module__', '').startswith('mmseg_ood'):
                found.add((reg_name, name))
    found |= {('OOD_SCORERS', name) for name in OOD_SCORERS.module_dict}
    return found


def guide_text():
    """The text of every page but the generated API reference."""
    texts = []
    for root, dirs, files in os.walk(DOCS):
        dirs[:] = [d for d in dirs
                   if not d.startswith(('_', '.')) and d != 'api']
        for f in files:
            if f.endswith('.md'):
                with open(osp.join(root, f), encoding='utf-8') as fh:
                    texts.append(fh.read())
    return '\n'.join(texts)


def test_every_registered_class_is_explained_on_a_page():
    names = registered_names()
    assert len(names) >= 50 and ('HOOKS', 'OODVisualizationHook') in names
    text = guide_text()
    missing = sorted(f'{reg}.{name}' for reg, name in names
                     if not re.search(rf'(?<![\w.]){re.escape(name)}(?!\w)',
                                      text))
    assert not missing, (
        'registered but named on no page of docs/en (API reference '
        f'aside): {missing}')


def test_every_relative_link_of_the_readme_resolves():
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    links = re.findall(r'\]\(([^)\s]+)\)', readme)
    local = [link.split('#')[0] for link in links
             if not re.match(r'\w+://', link) and not link.startswith('#')]
    assert len(local) >= 20, local
    broken = sorted({link for link in local
                     if not osp.exists(osp.join(REPO, link))})
    assert not broken, f'README.md links to missing files: {broken}'
