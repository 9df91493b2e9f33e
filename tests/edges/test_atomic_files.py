"""utils.files: every write is atomic, checked, and never over an input;
every read of a JSON file gives a named error."""
import json
import os
import os.path as osp

import numpy as np
import pytest

from mmseg_ood.errors import (DamagedFileError, MissingInputError,
                              OutputPathError, UserError)
from mmseg_ood.utils.files import (atomic_output, atomic_write_text,
                                   check_output_dir, check_output_path,
                                   check_schema_version, dump_json,
                                   expect_field, json_safe, load_json,
                                   write_with)


def _leftovers(folder):
    return sorted(f for f in os.listdir(folder) if '.tmp' in f)


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(
        tmp_path):
    out = tmp_path / 'model.onnx'
    out.write_bytes(b'good model')
    with pytest.raises(RuntimeError, match='exporter crashed'):
        with atomic_output(str(out)) as tmp:
            with open(tmp, 'wb') as f:
                f.write(b'half a mod')
            raise RuntimeError('exporter crashed')
    assert out.read_bytes() == b'good model'
    assert _leftovers(tmp_path) == []


def test_an_interrupt_is_a_failure_too(tmp_path):
    out = tmp_path / 'a.json'
    out.write_text('{"old": 1}')
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(str(out)) as tmp:
            open(tmp, 'w').write('{"new"')
            raise KeyboardInterrupt
    assert json.loads(out.read_text()) == {'old': 1}
    assert _leftovers(tmp_path) == []


def test_a_writer_that_writes_nothing_does_not_replace_a_good_file(
        tmp_path):
    out = tmp_path / 'ckpt.pth'
    out.write_bytes(b'weights')
    with pytest.raises(OSError, match='left no data'):
        with atomic_output(str(out)):
            pass  # e.g. an exporter that returned without writing
    assert out.read_bytes() == b'weights'
    assert _leftovers(tmp_path) == []


def test_a_writer_reporting_failure_is_an_error(tmp_path):
    out = tmp_path / 'overlay.png'
    with pytest.raises(OSError, match='could not write'):
        write_with(str(out), lambda tmp: False)  # cv2.imwrite's failure
    assert not out.exists() and _leftovers(tmp_path) == []


def test_the_temporary_file_keeps_the_extension_and_the_folder(tmp_path):
    seen = {}

    def write(tmp):
        seen['tmp'] = tmp
        open(tmp, 'wb').write(b'x')

    final = write_with(str(tmp_path / 'heat.png'), write)
    assert seen['tmp'].endswith('.png')  # cv2 picks its codec by it
    assert osp.dirname(seen['tmp']) == str(tmp_path)  # atomic rename
    assert final == str(tmp_path / 'heat.png')
    assert (tmp_path / 'heat.png').read_bytes() == b'x'


def test_new_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(str(tmp_path / 'r.md'), 'x')
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / 'r.md').st_mode & 0o777) == oct(0o644)


@pytest.mark.parametrize('link', ['symlink', 'hardlink', 'same'])
def test_an_output_that_is_an_input_by_any_name_is_refused(tmp_path, link):
    src = tmp_path / 'ckpt.pth'
    src.write_bytes(b'weights')
    out = tmp_path / 'out.pth'
    if link == 'symlink':
        out.symlink_to(src)
    elif link == 'hardlink':
        os.link(src, out)
    else:
        out = tmp_path / '.' / 'ckpt.pth'
    with pytest.raises(OutputPathError, match='is the input') as e:
        dump_json({'a': 1}, str(out), inputs=[None, str(src)], what='--out')
    assert str(out) in str(e.value) and '--out' in str(e.value)
    assert src.read_bytes() == b'weights'
    assert _leftovers(tmp_path) == []


def test_output_paths_that_cannot_be_written_are_named(tmp_path):
    (tmp_path / 'folder').mkdir()
    (tmp_path / 'file').write_text('x')
    with pytest.raises(OutputPathError, match='is a folder'):
        check_output_path(str(tmp_path / 'folder'), what='--out')
    with pytest.raises(OutputPathError, match='does not exist'):
        check_output_path(str(tmp_path / 'nope' / 'a.json'))
    with pytest.raises(OutputPathError, match='is a file'):
        check_output_path(str(tmp_path / 'file' / 'a.json'))
    with pytest.raises(OutputPathError, match='is a file, not a folder'):
        check_output_dir(str(tmp_path / 'file'))
    with pytest.raises(OutputPathError, match='cannot be created'):
        check_output_dir(str(tmp_path / 'file' / 'sub' / 'deeper'))
    # a folder that does not exist yet is fine: the tool creates it
    assert check_output_dir(str(tmp_path / 'new' / 'run')) == \
        str(tmp_path / 'new' / 'run')


def test_json_is_strict_and_plain():
    payload = {'n': np.int64(3), 'x': np.float32(0.5), 'nan': float('nan'),
               'inf': np.float64(np.inf), 'ok': np.bool_(True),
               'arr': np.arange(3), 't': (1, 2)}
    assert json_safe(payload) == {'n': 3, 'x': 0.5, 'nan': None,
                                  'inf': None, 'ok': True, 'arr': [0, 1, 2],
                                  't': [1, 2]}
    assert type(json_safe(np.int64(3))) is int


def test_dump_json_writes_numpy_counts_as_numbers(tmp_path):
    path = str(tmp_path / 'r.json')
    dump_json({'count': np.int64(7), 'auroc': np.float64('nan')}, path)
    assert json.load(open(path)) == {'count': 7, 'auroc': None}


@pytest.mark.parametrize('content, match', [
    (b'{"a": 1', 'not valid JSON'),
    (b'', 'not valid JSON'),
    (b'\xff\xfe\x00garbage', 'not UTF-8'),
    (b'[' * 100000 + b']' * 100000, 'nested too deeply|not valid JSON'),
])
def test_damaged_json_files_are_named(tmp_path, content, match):
    path = tmp_path / 'calib.json'
    path.write_bytes(content)
    with pytest.raises(DamagedFileError, match=match) as e:
        load_json(str(path), 'calibration file')
    assert 'calibration file' in str(e.value) and str(path) in str(e.value)
    assert isinstance(e.value, UserError)


def test_missing_json_and_folders_are_named(tmp_path):
    with pytest.raises(MissingInputError, match='not found'):
        load_json(str(tmp_path / 'nope.json'), 'results file')
    with pytest.raises(DamagedFileError, match='is a folder'):
        load_json(str(tmp_path), 'results file')


def test_schema_versions():
    assert check_schema_version({}, 'f', 'results file', 2) == 0
    assert check_schema_version({'schema_version': 2}, 'f', 'r', 2) == 2
    with pytest.raises(DamagedFileError, match='newer than this mmseg_ood'):
        check_schema_version({'schema_version': 3}, 'f', 'r', 2)
    with pytest.raises(DamagedFileError, match='no longer reads'):
        check_schema_version({}, 'f', 'r', 2, oldest=1)
    with pytest.raises(DamagedFileError, match='must be an int'):
        check_schema_version({'schema_version': '2'}, 'f', 'r', 2)
    with pytest.raises(DamagedFileError, match='expected a JSON object'):
        check_schema_version([1, 2], 'f', 'r', 2)


def test_expect_field_names_the_field_and_the_types():
    where = 'calibration file c.json'
    d = {'threshold': 0.5, 'n': 3, 'flag': True, 'names': 'x'}
    assert expect_field(d, 'threshold', float, where) == 0.5
    assert expect_field(d, 'n', float, where) == 3  # an int is a number
    assert expect_field(d, 'gone', str, where, default=None) is None
    with pytest.raises(DamagedFileError, match="'gone' is missing"):
        expect_field(d, 'gone', str, where)
    with pytest.raises(DamagedFileError,
                       match="'flag' must be a number, got bool"):
        expect_field(d, 'flag', float, where)
    with pytest.raises(DamagedFileError,
                       match="'names' must be a list, got str 'x'"):
        expect_field(d, 'names', list, where)
    with pytest.raises(DamagedFileError, match='expected an object'):
        expect_field(['threshold'], 'threshold', float, where)
