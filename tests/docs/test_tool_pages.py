"""Every tool has a user-guide page that names every option of its
argument parser, and the README's table of tools links to that page: a new
option without documentation fails the suite."""
import argparse
import importlib
import os
import os.path as osp
import re

import pytest

from conftest import REPO, package_tool

DOCS = osp.join(REPO, 'docs', 'en')
README = open(osp.join(REPO, 'README.md'), encoding='utf-8').read()
TOOLS = sorted(f[:-3] for f in os.listdir(osp.join(REPO, 'tools'))
               if f.endswith('.py'))
#: Tools documented together on one page; the others have
#: ``user_guides/<tool>.md``.
SHARED_PAGES = {'train': 'train_test', 'test': 'train_test'}
#: torchrun's own argument, not a user's
EXEMPT = {'--help', '--local_rank', '--local-rank'}


def tool_page(tool):
    """The tool's page, relative to docs/en."""
    return f'user_guides/{SHARED_PAGES.get(tool, tool)}.md'


class _Parser(Exception):
    pass


def _flags(tool: str, monkeypatch) -> set:
    """The option strings of the tool's own ArgumentParser (caught when
    its ``parse_args`` runs)."""
    def catch(parser, *args, **kwargs):
        raise _Parser(parser)
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', catch)
    mod = importlib.import_module(package_tool(tool))
    with pytest.raises(_Parser) as caught:
        mod.parse_args([])
    parser = caught.value.args[0]
    return {o for a in parser._actions for o in a.option_strings
            if o.startswith('--')} - EXEMPT


def test_the_flag_search_finds_flags(monkeypatch):
    flags = _flags('ood_test', monkeypatch)
    assert {'--work-dir', '--datasets', '--no-id-eval', '--debug'} <= flags


@pytest.mark.parametrize('tool', TOOLS)
def test_every_flag_of_the_tool_is_on_its_page(tool, monkeypatch):
    page = osp.join(DOCS, tool_page(tool))
    assert osp.isfile(page), f'tools/{tool}.py has no page: {page}'
    with open(page, encoding='utf-8') as f:
        text = f.read()
    assert f'tools/{tool}.py' in text, f'{page} does not name tools/{tool}.py'
    flags = _flags(tool, monkeypatch)
    assert flags, f'{tool}: no flags found (parser changed?)'
    missing = sorted(f for f in flags
                     if not re.search(re.escape(f) + r'(?![\w-])', text))
    assert not missing, (
        f'tools/{tool}.py flags not on docs/en/{tool_page(tool)}: {missing}')


@pytest.mark.parametrize('tool', TOOLS)
def test_the_readme_links_every_tool_to_its_page(tool):
    assert f'tools/{tool}.py' in README, f'README.md does not name {tool}'
    assert f'docs/en/{tool_page(tool)}' in README, (
        f'README.md does not link docs/en/{tool_page(tool)}')
