"""utils.work_dir_lock: one run per work dir, stale locks taken over, and
two real ood_test runs on one folder."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import time

import pytest

from conftest import QUICK_OPTIONS, REPO, STREET_CONFIG
from mmseg_ood.errors import WorkDirLockedError
from mmseg_ood.utils.work_dir_lock import LOCK_NAME, read_lock, work_dir_lock


def _lock_file(work):
    return osp.join(work, LOCK_NAME)


def test_the_lock_names_its_holder_and_is_released(tmp_path):
    work = str(tmp_path / 'run')
    with work_dir_lock(work, 'ood_test'):
        info = read_lock(_lock_file(work))
        assert info['pid'] == os.getpid() and info['tool'] == 'ood_test'
        assert info['host'] == socket.gethostname()
    assert not osp.exists(_lock_file(work))


def test_a_lock_held_by_a_live_process_stops_a_second_run(tmp_path):
    work = tmp_path / 'run'
    work.mkdir()
    holder = subprocess.Popen([sys.executable, '-c',
                               'import time; time.sleep(60)'])
    try:
        (work / LOCK_NAME).write_text(json.dumps(dict(
            pid=holder.pid, host=socket.gethostname(), tool='robustness_test',
            started=time.time())))
        with pytest.raises(WorkDirLockedError) as e:
            with work_dir_lock(str(work), 'ood_test'):
                pass
        msg = str(e.value)
        assert str(work) in msg and f'pid {holder.pid}' in msg
        assert 'robustness_test' in msg and LOCK_NAME in msg
        assert read_lock(str(work / LOCK_NAME))['pid'] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path, monkeypatch):
    import mmseg_ood.utils.work_dir_lock as module
    notes = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: notes.append(msg))
    work = tmp_path / 'run'
    work.mkdir()
    gone = subprocess.Popen([sys.executable, '-c', 'pass'])
    gone.wait()
    (work / LOCK_NAME).write_text(json.dumps(dict(
        pid=gone.pid, host=socket.gethostname(), tool='ood_test',
        started=time.time() - 100)))
    with work_dir_lock(str(work), 'ood_test'):
        assert read_lock(str(work / LOCK_NAME))['pid'] == os.getpid()
    assert len(notes) == 1 and 'taking over the stale lock' in notes[0]
    assert f'pid {gone.pid}' in notes[0]


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    work = tmp_path / 'run'
    work.mkdir()
    (work / LOCK_NAME).write_text(json.dumps(dict(
        pid=1, host='elsewhere.example', tool='ood_test', started=0)))
    with pytest.raises(WorkDirLockedError, match='elsewhere.example'):
        with work_dir_lock(str(work), 'ood_test'):
            pass


def test_taking_the_lock_again_in_one_process_is_allowed(tmp_path):
    work = str(tmp_path / 'run')
    with work_dir_lock(work, 'robustness_test'):
        with work_dir_lock(work, 'robustness_test'):
            assert osp.exists(_lock_file(work))
        assert osp.exists(_lock_file(work))  # the outer one still holds
    assert not osp.exists(_lock_file(work))


def test_only_rank_zero_locks(tmp_path, monkeypatch):
    work = tmp_path / 'run'
    work.mkdir()
    (work / LOCK_NAME).write_text(json.dumps(dict(
        pid=1, host='elsewhere.example', tool='ood_test', started=0)))
    monkeypatch.setenv('RANK', '1')
    with work_dir_lock(str(work), 'ood_test'):  # rank 0 holds it
        pass


def test_a_second_ood_test_on_a_busy_work_dir(tmp_path, synthetic_root,
                                            trained_work_dir):
    """A run holds the work dir (another process, as a running ood_test
    does); ood_test on the same folder stops with one line naming it and
    touches nothing there (taking over a stale lock: the unit test
    above)."""
    ckpt = osp.join(trained_work_dir, 'iter_2.pth')
    work = tmp_path / 'eval'
    work.mkdir()
    (work / 'results.json').write_text('{"previous": true}')
    env = dict(os.environ, MMSEG_OOD_DATA=synthetic_root,
               OMP_NUM_THREADS='1')
    holder = subprocess.Popen([sys.executable, '-c', (
        'import sys, time\n'
        'from mmseg_ood.utils.work_dir_lock import work_dir_lock\n'
        f'with work_dir_lock({str(work)!r}, "ood_test"):\n'
        '    print("locked", flush=True)\n'
        '    time.sleep(600)\n')], cwd=REPO, stdout=subprocess.PIPE,
        text=True)
    cmd = [sys.executable, osp.join(REPO, 'tools', 'ood_test.py'),
           STREET_CONFIG, ckpt, '--work-dir', str(work), '--scorers', 'msp',
           '--no-id-eval', '--cfg-options', *QUICK_OPTIONS]
    try:
        assert holder.stdout.readline().strip() == 'locked'
        second = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True,
                                text=True, timeout=600)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 2, second.stderr[-3000:]
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in second.stderr
    assert lines[0].startswith(f'ood_test: error: work dir {work} is in use')
    assert f'pid {holder.pid}' in lines[0]
    assert sorted(os.listdir(work)) == [LOCK_NAME, 'results.json']
    assert (work / 'results.json').read_text() == '{"previous": true}'
    assert osp.exists(_lock_file(str(work)))  # the holder's, left alone
