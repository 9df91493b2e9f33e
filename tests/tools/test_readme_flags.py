"""Every tool and every flag of it is named in README.md, the manual: a new
option without documentation fails the suite."""
import argparse
import importlib
import os
import os.path as osp
import re

import pytest

from conftest import REPO, package_tool

README = open(osp.join(REPO, 'README.md'), encoding='utf-8').read()
TOOLS = sorted(f[:-3] for f in os.listdir(osp.join(REPO, 'tools'))
               if f.endswith('.py'))
#: torchrun's own argument, not a user's
EXEMPT = {'--help', '--local_rank', '--local-rank'}


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


@pytest.mark.parametrize('tool', TOOLS)
def test_every_flag_of_the_tool_is_documented(tool, monkeypatch):
    assert f'tools/{tool}.py' in README or f'`{tool}`' in README
    flags = _flags(tool, monkeypatch)
    assert flags, f'{tool}: no flags found (parser changed?)'
    missing = sorted(f for f in flags
                     if not re.search(re.escape(f) + r'(?![\w-])', README))
    assert not missing, f'tools/{tool}.py flags not in README.md: {missing}'
