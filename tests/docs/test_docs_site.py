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

from conftest import REPO, registered_classes
from doc_pages import DOCS, doc_pages, read_page

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
    pages = [page[:-3] for page in doc_pages()]
    built = [p for p in pages
             if osp.isfile(osp.join(out, 'html', p + '.html'))]
    assert built == pages
    with open(osp.join(out, 'html', 'api', 'scorers.html'),
              encoding='utf-8') as f:
        api = f.read()
    # autodoc ran: a scorer's docstring is on the page
    assert 'mmseg_ood.scorers.energy.Energy' in api and 'References' in api


def guide_text():
    """The text of every page but the generated API reference."""
    return '\n'.join(read_page(page) for page in doc_pages(skip=('api',)))


def test_every_registered_class_is_explained_on_a_page():
    keys = registered_classes()
    assert len(keys) >= 50 and 'HOOKS.OODVisualizationHook' in keys
    text = guide_text()
    missing = sorted(
        key for key in keys
        if not re.search(rf'(?<![\w.]){re.escape(key.split(".", 1)[1])}(?!\w)',
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


def guide_sections():
    """``{heading: text}`` of every section of the guide pages (API
    reference aside), a section running to the next heading of any
    level."""
    sections = {}
    for page in doc_pages(skip=('api',)):
        # headings outside code blocks
        text = re.sub(r'^```.*?^```', lambda m: m.group(0).replace(
            '\n#', '\n '), read_page(page), flags=re.S | re.M)
        parts = re.split(r'^#+ (.*)$', text, flags=re.M)
        for heading, body in zip(parts[1::2], parts[2::2]):
            sections[heading.strip()] = body
    return sections


def hooks_and_metrics():
    """``{name: class}`` of the hooks and metrics mmseg_ood registers."""
    found = {}
    for key, cls in registered_classes().items():
        registry, name = key.split('.', 1)
        if registry in ('HOOKS', 'METRICS') and name == cls.__name__:
            found[name] = cls
    return found


def test_every_hook_and_metric_has_a_section_naming_its_arguments():
    import inspect
    sections = guide_sections()
    classes = hooks_and_metrics()
    assert 'OODVisualizationHook' in classes and 'OODMetric' in classes
    problems = []
    for name, cls in sorted(classes.items()):
        own = [h for h in sections if re.search(rf'`?\b{name}\b`?', h)]
        if not own:
            problems.append(f'{name}: no section headed with its name')
            continue
        text = '\n'.join(sections[h] for h in own)
        params = [p.name for p in inspect.signature(
            cls.__init__).parameters.values()
            if p.name != 'self' and p.kind not in (p.VAR_POSITIONAL,
                                                   p.VAR_KEYWORD)]
        missing = [p for p in params if f'`{p}' not in text]
        if missing:
            problems.append(f'{name}: arguments {missing} not in its '
                            f'section(s) {own}')
    assert not problems, '\n'.join(problems)
