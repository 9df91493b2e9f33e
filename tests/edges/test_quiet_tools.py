"""Quiet by default: the package's notices are ``OODNotice`` (a log line in
a tool run, a Python warning in library use), a tool run on the demo model
prints no third-party warning (``--verbose`` shows them), and progress is a
live bar on a terminal and short plain lines in a log."""
import ast
import glob
import importlib
import io
import os
import os.path as osp
import re

import pytest

from conftest import QUICK_OPTIONS, REPO, STREET_CONFIG, run_tool
from mmseg_ood.errors import OODNotice

#: A line that is a Python warning, or a deprecation logged through
#: mmengine's logger (not torch's build flag ``-Wno-deprecated-...``).
WARNING_LINE = re.compile(r'Warning:|warnings\.warn\(|(?<![-\w])deprecat',
                          re.I)


def _warning_lines(text):
    return [line for line in text.splitlines() if WARNING_LINE.search(line)]


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


pytestmark = pytest.mark.usefixtures('isolated_loggers')


# --- the package's notices ---------------------------------------------------
def _warn_calls():
    """``(module, call node)`` of every ``warnings.warn`` in the package,
    the old-import-path shims aside (``DeprecationWarning``: Python's
    category for them, kept so that ``-W error::DeprecationWarning``
    finds them)."""
    for path in sorted(glob.glob(osp.join(REPO, 'mmseg_ood', '**', '*.py'),
                                 recursive=True)):
        rel = osp.relpath(path, REPO)
        if rel == osp.join('mmseg_ood', 'deprecation.py'):
            continue
        module = rel[:-3].replace(os.sep, '.').replace('.__init__', '')
        tree = ast.parse(open(path, encoding='utf-8').read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(
                    node.func, ast.Attribute) and node.func.attr == 'warn' \
                    and isinstance(node.func.value, ast.Name) and \
                    node.func.value.id == 'warnings':
                yield module, node


def test_every_package_warning_is_a_notice():
    calls = list(_warn_calls())
    assert len(calls) >= 10
    for module, node in calls:
        where = f'{module}:{node.lineno}'
        category = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == 'category'), None)
        assert category is not None, f'{where}: a bare UserWarning'
        assert isinstance(category, ast.Name), where
        cls = getattr(importlib.import_module(module), category.id)
        assert issubclass(cls, OODNotice), f'{where}: {cls.__name__}'


def test_named_notices_are_notices_and_user_warnings():
    from mmseg_ood.evaluation import (UndefinedMetricWarning,
                                      UnlistedLabelValueWarning)
    for cls in (UndefinedMetricWarning, UnlistedLabelValueWarning):
        assert issubclass(cls, OODNotice) and issubclass(cls, UserWarning)


def test_a_notice_is_a_python_warning_in_library_use():
    import numpy as np

    from mmseg_ood.evaluation import UndefinedMetricWarning, curve_metrics
    with pytest.warns(UndefinedMetricWarning, match='no OOD pixels') as rec:
        out = curve_metrics(np.zeros(2), np.ones(2), np.arange(2.0))
    assert np.isnan(out['auroc']) and out['num_ood'] == 0
    assert all(issubclass(w.category, OODNotice) for w in rec)


# --- a tool run on the demo model: quiet, short lines, --verbose -------------
@pytest.fixture(scope='module')
def tool_runs(tmp_path_factory, synthetic_root, trained_work_dir):
    """``tools/ood_test.py`` on the demo model (every default scorer),
    output piped (not a terminal), once quiet and once with ``--verbose``;
    ``tools/test.py`` quiet (mmengine logs deprecations through its
    logger there)."""
    runs = {}
    for flag in ('', '--verbose'):
        out = tmp_path_factory.mktemp('quiet' + flag.strip('-'))
        proc = run_tool(
            'ood_test.py', STREET_CONFIG, _ckpt(trained_work_dir),
            '--work-dir', str(out), '--datasets', 'synthetic_ood',
            '--cfg-options', *QUICK_OPTIONS, *([flag] if flag else []),
            env={'MMSEG_OOD_DATA': synthetic_root})
        runs[flag or 'quiet'] = out, proc
    out = tmp_path_factory.mktemp('quiet_test')
    runs['test.py'] = out, run_tool(
        'test.py', STREET_CONFIG, _ckpt(trained_work_dir), '--work-dir',
        str(out), '--cfg-options', *QUICK_OPTIONS,
        env={'MMSEG_OOD_DATA': synthetic_root})
    return runs


def _log_text(out):
    (log, ) = glob.glob(str(out / '*' / '*.log'))
    return open(log, encoding='utf-8').read()


def test_a_tool_run_prints_no_third_party_warning(tool_runs):
    for name in ('quiet', 'test.py'):
        _, proc = tool_runs[name]
        assert _warning_lines(proc.stdout + proc.stderr) == [], name
    # mmengine's deprecations logged through its logger: in the log file,
    # not on the console
    out, proc = tool_runs['test.py']
    assert 'The prefix is not set in metric class' in _log_text(out)
    assert 'The prefix is not set' not in proc.stdout + proc.stderr


def test_verbose_shows_other_packages_warnings_again(tool_runs):
    _, verbose = tool_runs['--verbose']
    shown = _warning_lines(verbose.stdout + verbose.stderr)
    assert any('build_loss' in line for line in shown), shown
    assert any('UserWarning' in line for line in shown)


def test_a_notice_is_one_log_line_in_a_tool_run(tool_runs):
    """``background`` is among the default scorers and cannot run on the
    demo model: the skip is a log line, not a Python warning."""
    out, proc = tool_runs['quiet']
    text = proc.stdout + proc.stderr
    notices = [line for line in text.splitlines()
               if "skipping scorer 'background'" in line]
    assert len(notices) == 1 and ' - WARNING - ' in notices[0], text
    assert 'UserWarning' not in text and 'OODNotice' not in text
    assert "skipping scorer 'background'" in _log_text(out)
    # with --verbose it is the Python warning it is in library use
    _, verbose = tool_runs['--verbose']
    assert "OODNotice: skipping scorer 'background'" in verbose.stderr


def test_a_tool_run_writes_no_long_progress_line(tool_runs):
    for name in ('quiet', '--verbose'):
        out, proc = tool_runs[name]
        text = proc.stdout + proc.stderr
        assert '\r' not in text  # not a terminal: plain lines
        assert max(map(len, text.splitlines())) <= 500
        assert re.search(r'\[ood_test\] synthetic_ood 3/3 \(100%\)',
                         proc.stdout), proc.stdout
        assert '\r' not in _log_text(out)


def test_third_party_log_warnings_go_to_the_file_only(tmp_path, capsys):
    """In-process: a warning that another package logs through mmengine's
    logger reaches the log file, not the console; the package's own log
    warnings and other packages' errors reach both; ``enabled=False``
    changes nothing."""
    import logging

    from mmengine.logging import MMLogger

    from mmseg_ood.tools.entry import quiet_warnings
    log_file = str(tmp_path / 'run.log')
    logger = MMLogger.get_instance('quiet_test', log_file=log_file)

    def log_from(module, message, level=logging.WARNING):
        code = ('from mmengine.logging import print_log\n'
                f'print_log({message!r}, logger="quiet_test", '
                f'level={level})\n')
        exec(compile(code, module.replace('.', '/') + '.py', 'exec'),
             {'__name__': module})

    with quiet_warnings():
        log_from('thirdparty.fileio', '"FileClient" will be deprecated')
        log_from('mmseg_ood.engine.fake', 'our own log warning')
        log_from('thirdparty.runner', 'a third-party error', logging.ERROR)
    console = capsys.readouterr().out
    assert 'FileClient' not in console
    assert 'our own log warning' in console
    assert 'a third-party error' in console
    with quiet_warnings(enabled=False):
        log_from('thirdparty.fileio', 'shown when verbose')
    assert 'shown when verbose' in capsys.readouterr().out
    for handler in logger.handlers:
        handler.flush()
    text = open(log_file, encoding='utf-8').read()
    for message in ('"FileClient" will be deprecated', 'our own log warning',
                    'a third-party error', 'shown when verbose'):
        assert message in text
    # the patch is undone
    assert MMLogger.callHandlers is MMLogger.__dict__['callHandlers']


# --- progress: a terminal and a log ------------------------------------------
class _Clock:

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Terminal(io.StringIO):

    def isatty(self):
        return True


def test_progress_is_a_live_bar_on_a_terminal():
    from mmseg_ood.utils.progress import Progress
    stream, clock = _Terminal(), _Clock()
    bar = Progress(4, title='[ood_test] demo', unit='images', stream=stream,
                   clock=clock)
    assert bar.live
    for _ in range(4):
        clock.now += 0.5
        bar.update()
    bar.close()
    text = stream.getvalue()
    assert text.count('\r') == 5 and text.endswith('\n')
    assert text.count('\n') == 1
    last = text.split('\r')[-1]
    assert '4/4 (100%)' in last and '2.0 images/s' in last
    assert all(len(part) < 500 for part in text.split('\r'))


def test_progress_in_a_log_is_a_line_every_10_percent():
    from mmseg_ood.utils.progress import Progress
    stream, clock = io.StringIO(), _Clock()
    bar = Progress(1000, title='[ood_test] demo', unit='images',
                   stream=stream, clock=clock)
    assert not bar.live
    for _ in range(1000):
        clock.now += 0.001  # fast: the 10 % steps give the lines
        bar.update()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert '\r' not in stream.getvalue()
    assert len(lines) == 10
    assert lines[0].startswith('[ood_test] demo 100/1000 (10%), ')
    assert 'ETA' in lines[0] and 'ETA' not in lines[-1]
    assert lines[-1].startswith('[ood_test] demo 1000/1000 (100%)')
    assert max(map(len, lines)) < 500


def test_progress_in_a_log_is_a_line_every_few_seconds():
    from mmseg_ood.utils.progress import Progress
    stream, clock = io.StringIO(), _Clock()
    bar = Progress(10000, stream=stream, clock=clock, interval=5)
    for _ in range(100):   # 100 items, 1 s each: 1 % of the total
        clock.now += 1
        bar.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 20  # every 5 s
    assert lines[0].startswith('5/10000 (0%), 1.0 items/s, elapsed 5s, ')
    bar.close()  # the last count was written: no repeat
    assert len(stream.getvalue().splitlines()) == 20


def test_progress_with_an_unknown_total_and_a_long_title():
    from mmseg_ood.utils.progress import Progress
    stream, clock = io.StringIO(), _Clock()
    bar = Progress(0, title='x' * 2000, stream=stream, clock=clock)
    clock.now += 2
    bar.update(3)
    bar.close()
    (line, ) = stream.getvalue().splitlines()
    assert len(line) < 500 and ' 3, 1.5 items/s' in line


def test_progress_arguments_are_checked():
    from mmseg_ood.errors import InvalidValueError
    from mmseg_ood.utils.progress import Progress
    for kwargs, name in ((dict(total=-1), 'total'),
                         (dict(total=3, interval=0), 'interval'),
                         (dict(total=3, step=0), 'step'),
                         (dict(total=3, step=1.5), 'step')):
        with pytest.raises(InvalidValueError, match=name):
            Progress(stream=io.StringIO(), **kwargs)


@pytest.mark.parametrize('tty', [True, False])
def test_the_hook_follows_stdout(tty, monkeypatch, capsys):
    """``ProgressBarHook`` on the real ``sys.stdout``: ``isatty``
    monkeypatched both ways."""
    from types import SimpleNamespace

    from mmseg.registry import HOOKS
    import sys
    monkeypatch.setattr(sys.stdout, 'isatty', lambda: tty, raising=False)
    hook = HOOKS.build(dict(type='ProgressBarHook', title='[t] set'))
    runner = SimpleNamespace(test_dataloader=SimpleNamespace(
        dataset=range(300)))
    hook.before_test_epoch(runner)
    for i in range(150):
        hook.after_test_iter(runner, i, outputs=[1, 2])
    hook.after_test_epoch(runner)
    out = capsys.readouterr().out
    assert max(len(part) for line in out.splitlines()
               for part in line.split('\r')) < 500
    if tty:
        assert out.count('\r') == 151 and out.count('\n') == 1
    else:
        assert '\r' not in out
        lines = out.splitlines()
        assert len(lines) == 10 and lines[-1].startswith('[t] set 300/300')
