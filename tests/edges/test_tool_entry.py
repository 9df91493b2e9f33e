"""tools.entry: one error path for every tool. A user error is one line
and exit status 2; a bug keeps its traceback; --debug shows every
traceback; other packages' warnings are hidden unless --verbose."""
import argparse
import importlib
import os
import subprocess
import sys
import warnings

import pytest

from conftest import REPO, package_tool
from mmseg_ood.errors import (DamagedFileError, InvalidValueError,
                              MissingInputError, OODNotice, UserError)
from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry

TOOLS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, 'tools'))
               if f.endswith('.py'))


def _tool(raise_what):
    @tool_entry('demo_tool')
    def main(argv=None):
        p = ToolArgumentParser()
        p.parse_args(argv)
        raise raise_what
    return main


@pytest.mark.parametrize('error', [
    InvalidValueError('--ood-label must be in [0, 254], got 300'),
    MissingInputError('checkpoint file not found: x.pth'),
    DamagedFileError('calibration file c.json is not valid JSON'),
    PermissionError(13, 'Permission denied', '/root/out.json'),
])
def test_a_user_error_is_one_line_and_exit_2(error, capsys):
    with pytest.raises(SystemExit) as e:
        _tool(error)([])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert err.startswith('demo_tool: error: ')
    if isinstance(error, OSError) and not isinstance(error, UserError):
        assert 'Permission denied: /root/out.json' in err
    else:
        assert str(error) in err


def test_a_multi_line_message_is_joined_on_one_line(capsys):
    with pytest.raises(SystemExit):
        _tool(InvalidValueError('does not fit:\n  a: (3,)\n  b: (4,)'))([])
    assert capsys.readouterr().err == \
        'demo_tool: error: does not fit:; a: (3,); b: (4,)\n'


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        _tool(ZeroDivisionError('bug'))([])
    # a built-in ValueError raised by a library is a bug too, not a user
    # error: only the package's UserError family is printed as one line
    with pytest.raises(ValueError):
        _tool(ValueError('numpy says no'))([])


def test_debug_shows_the_traceback_of_a_user_error():
    with pytest.raises(InvalidValueError):
        _tool(InvalidValueError('bad'))(['--debug'])


def test_ctrl_c_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        _tool(KeyboardInterrupt())([])
    assert e.value.code == 130
    assert capsys.readouterr().err == 'demo_tool: interrupted\n'


def test_warnings_are_quiet_unless_verbose(capsys):
    @tool_entry('demo_tool')
    def main(argv=None):
        ToolArgumentParser().parse_args(argv)
        warnings.warn('torch.foo is deprecated', FutureWarning)
        warnings.warn('scorer rba skipped: no mask head', OODNotice)
        return 'done'

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert main([]) == 'done'
        quiet = capsys.readouterr()
        assert main(['--verbose']) == 'done'
    assert 'deprecated' not in quiet.out + quiet.err
    assert 'scorer rba skipped: no mask head' in quiet.out + quiet.err
    assert 'Warning' not in quiet.err  # a log line, not a Python warning
    assert [str(w.message) for w in caught] == [
        'torch.foo is deprecated', 'scorer rba skipped: no mask head']


class _Parser(Exception):
    pass


@pytest.mark.parametrize('tool', TOOLS)
def test_every_tool_has_the_diagnostic_flags_and_the_error_path(
        tool, monkeypatch):
    mod = importlib.import_module(package_tool(tool))
    assert getattr(mod.main, '__wrapped__', None) is not None, \
        f'{tool}: main is not wrapped by tool_entry'

    def catch(parser, *args, **kwargs):
        raise _Parser(parser)
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', catch)
    with pytest.raises(_Parser) as caught:
        mod.parse_args([])
    parser = caught.value.args[0]
    assert isinstance(parser, ToolArgumentParser), tool
    flags = {o for a in parser._actions for o in a.option_strings}
    assert {'--debug', '--verbose'} <= flags, tool


def test_a_missing_checkpoint_through_a_real_tool(tmp_path, synthetic_root):
    from conftest import STREET_CONFIG
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, 'tools', 'ood_test.py'),
         STREET_CONFIG, str(tmp_path / 'nope.pth'), '--work-dir',
         str(tmp_path / 'w')], capture_output=True, text=True, cwd=REPO,
        env=dict(os.environ, MMSEG_OOD_DATA=synthetic_root))
    assert proc.returncode == 2
    assert proc.stderr.strip().count('\n') == 0, proc.stderr
    assert 'nope.pth' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'w').exists()  # nothing written
