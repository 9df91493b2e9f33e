"""tools/robustness_test.py at its edges: model names refused before any
work, a damaged resume file set aside, another run's resume file refused
by name, and result files complete or absent (no ``.tmp`` beside them)."""
import json
import os
import os.path as osp
import re

import pytest

from conftest import STREET_CONFIG
from mmseg_ood.apis import robustness_test as api
from mmseg_ood.errors import (DamagedFileError, InvalidValueError,
                              MissingInputError, OutputPathError)
from mmseg_ood.reports.robustness import (ROBUSTNESS_SCHEMA_VERSION,
                                          load_robustness_results,
                                          parse_cell_key,
                                          write_robustness_results)
from mmseg_ood.tools.robustness_test import main


def _leftovers(folder):
    return sorted(f for f in os.listdir(folder) if '.tmp' in f)


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / 'weights.pth'
    path.write_bytes(b'not read before the names are checked')
    return str(path)


def _refused(capsys, argv, *needles):
    """``main(argv)`` exits 2 with one line on stderr holding every
    needle."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith('robustness_test: error: ')
    for needle in needles:
        assert needle in err, err
    return err


# --- names, before any work --------------------------------------------------
@pytest.mark.parametrize('names, needles', [
    (['a|b'], ["'a|b'", "holds '|'"]),
    (['../x'], ["'../x'", 'path separator']),
    (['x/y'], ["'x/y'", 'path separator']),
    (['..'], ["'..'", "'.' or '..'"]),
    ([''], ['must not be empty']),
    ([' a'], ['starts or ends with a space']),
    (['a\nb'], ['control character']),
    (['corruption_cache'], ['the tool writes in the work dir']),
    (['Robustness.json'], ['the tool writes in the work dir']),
])
def test_bad_names_are_refused_before_any_work(tmp_path, ckpt, capsys,
                                               names, needles):
    work = tmp_path / 'work'
    _refused(capsys, [STREET_CONFIG, ckpt, '--work-dir', str(work),
                      '--names', *names], *needles)
    assert not work.exists()
    assert not (tmp_path / 'x').exists()  # '../x' wrote nothing outside


@pytest.mark.parametrize('names, extra, needle', [
    (['a', 'a'], [], "'a' twice"),
    (['A', 'a'], [], 'differ only in case'),
    (['a', 'a_msc'], ['--msc'], "the folder of 'a' with test-time"),
])
def test_names_that_would_share_a_folder_are_refused(tmp_path, ckpt, capsys,
                                                     names, extra, needle):
    _refused(capsys, [STREET_CONFIG, ckpt, STREET_CONFIG, ckpt,
                      '--work-dir', str(tmp_path / 'w'), '--names', *names,
                      *extra], needle)
    # without --msc, 'a' and 'a_msc' are two plain names
    api.check_model_names(['a', 'a_msc'])


def test_two_configs_of_one_file_name_need_names(tmp_path, ckpt, capsys):
    other = tmp_path / 'other'
    other.mkdir()
    copy = other / osp.basename(STREET_CONFIG)
    copy.write_text(open(STREET_CONFIG).read())
    _refused(capsys, [STREET_CONFIG, ckpt, str(copy), ckpt, '--work-dir',
                      str(tmp_path / 'w')], 'twice', '--names')


def test_a_work_dir_that_is_a_file_is_refused(tmp_path, ckpt, capsys):
    work = tmp_path / 'work'
    work.write_text('keep me')
    _refused(capsys, [STREET_CONFIG, ckpt, '--work-dir', str(work)],
             'is a file')
    assert work.read_text() == 'keep me'
    work.unlink()
    work.mkdir()
    (work / 'robustness.md').mkdir()
    _refused(capsys, [STREET_CONFIG, ckpt, '--work-dir', str(work)],
             'robustness.md is a folder')


def test_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    _refused(capsys, [STREET_CONFIG, str(tmp_path / 'nope.pth'),
                      '--work-dir', str(tmp_path / 'w')],
             'no checkpoint file', 'nope.pth')


# --- the resume file ---------------------------------------------------------
SETTINGS = dict(models=[dict(name='a', config='c.py', checkpoint='w.pth',
                             sha256='0' * 64)],
                corruptions=['fog'], severities=[2], msc=False,
                ood_datasets=[], seed=0, scorers=['msp'])
CELLS = {'a|clean|0|ss': dict(miou=0.5, ece=0.1, non_distinctiveness=None),
         'a|fog|2|ss': dict(miou=0.4, ece=None)}


def _partial(tmp_path, payload=None, text=None):
    path = tmp_path / 'robustness.partial.json'
    if text is None:
        payload = dict(dict(schema_version=ROBUSTNESS_SCHEMA_VERSION,
                            complete=False, settings=SETTINGS, cells=CELLS),
                       **(payload or {}))
        text = json.dumps(payload)
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return str(path)


def test_a_matching_resume_file_is_resumed(tmp_path):
    assert api.load_partial(_partial(tmp_path), SETTINGS) == CELLS
    # files before schema_version: their `schema` says what the cells hold
    legacy = _partial(tmp_path, dict(schema_version=None))
    data = json.load(open(legacy))
    del data['schema_version']
    data['schema'] = 2
    open(legacy, 'w').write(json.dumps(data))
    assert api.load_partial(legacy, SETTINGS) == CELLS
    assert api.load_partial(str(tmp_path / 'none.json'), SETTINGS) == {}


@pytest.mark.parametrize('text', [
    '{"schema_version": 2, "complete": false, "settings": {"models"',
    '',
    b'\xff\xfe not UTF-8',
    '[1, 2, 3]',
    json.dumps(dict(schema_version=2, settings=SETTINGS, cells=[1, 2])),
    json.dumps(dict(schema_version=2, settings=SETTINGS,
                    cells={'a|clean|0|ss': 'x'})),
    json.dumps(dict(schema_version=2, settings=SETTINGS,
                    cells={'no bars': dict(miou=0.5, ece=0.1)})),
    json.dumps(dict(schema_version=2, settings=SETTINGS,
                    cells={'a|clean|0|ss': dict(miou='0.5', ece=0.1)})),
    json.dumps(dict(schema_version=2, settings=[1], cells=CELLS)),
    json.dumps(dict(schema_version='two', settings=SETTINGS, cells=CELLS)),
    '[' * 50000 + ']' * 50000,
])
def test_a_damaged_resume_file_is_set_aside(tmp_path, capsys, text):
    path = _partial(tmp_path, text=text)
    before = open(path, 'rb').read()
    assert api.load_partial(path, SETTINGS) == {}
    assert not osp.exists(path)
    assert open(path + '.damaged', 'rb').read() == before
    out = capsys.readouterr().out
    assert f'set it aside as {path}.damaged and starting over' in out
    # a second damaged file does not replace the first
    _partial(tmp_path, text=text)
    assert api.load_partial(path, SETTINGS) == {}
    assert osp.isfile(path + '.damaged.2')


def test_cells_of_an_older_schema_are_set_aside(tmp_path, capsys):
    path = _partial(tmp_path)
    data = json.load(open(path))
    del data['schema_version']
    data['schema'] = 1
    open(path, 'w').write(json.dumps(data))
    assert api.load_partial(path, SETTINGS) == {}
    assert osp.isfile(path + '.schema1')
    out = capsys.readouterr().out
    assert 'has results schema 1' in out and 'IBE eq. 4' in out


def test_a_newer_resume_file_is_refused_and_kept(tmp_path):
    path = _partial(tmp_path, dict(schema_version=ROBUSTNESS_SCHEMA_VERSION
                                   + 1))
    before = open(path, 'rb').read()
    with pytest.raises(DamagedFileError, match='newer than this mmseg_ood'):
        api.load_partial(path, SETTINGS)
    assert open(path, 'rb').read() == before


def test_another_runs_resume_file_is_refused_naming_what_differs(tmp_path):
    path = _partial(tmp_path)
    before = open(path, 'rb').read()
    ours = dict(SETTINGS, corruptions=['fog', 'snow'])
    ours['models'] = [dict(SETTINGS['models'][0], sha256='1' * 64)]
    with pytest.raises(DamagedFileError) as e:
        api.load_partial(path, ours)
    message = str(e.value)
    for needle in (path, '2 finished cell(s)', "corruptions: ['fog'] there, "
                   "['fog', 'snow'] here", "model 'a' sha256 (the checkpoint"
                   ' file changed)', 'another --work-dir'):
        assert needle in message, message
    assert open(path, 'rb').read() == before


class _NoSession:
    """Stands for ``EvaluationSession``: the test stops the run where the
    first model would be loaded."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError('sessions start here')


def test_a_rerun_over_a_damaged_resume_file_starts_over(
        tmp_path, ckpt, monkeypatch, capsys):
    work = tmp_path / 'work'
    work.mkdir()
    partial = work / 'robustness.partial.json'
    partial.write_text('{"schema_version": 2, "cells": {"a|cle')
    monkeypatch.setattr(api, 'EvaluationSession', _NoSession)
    with pytest.raises(RuntimeError, match='sessions start here'):
        api.robustness_test([api.ModelSpec('a', STREET_CONFIG, ckpt)],
                            str(work), corruptions=['fog'], severities=[2])
    assert not partial.exists()
    assert (work / 'robustness.partial.json.damaged').is_file()
    assert 'robustness.partial.json.damaged' in capsys.readouterr().out


def test_a_rerun_with_other_settings_stops_before_any_model(
        tmp_path, ckpt, monkeypatch, capsys):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'robustness.partial.json').write_text(json.dumps(dict(
        schema_version=2, complete=False, settings=SETTINGS, cells=CELLS)))
    monkeypatch.setattr(api, 'EvaluationSession', _NoSession)
    _refused(capsys, [STREET_CONFIG, ckpt, '--work-dir', str(work),
                      '--names', 'a', '--corruptions', 'fog',
                      '--severities', '2'],
             'resume file', 'other settings', "model 'a' config")
    assert (work / 'robustness.partial.json').is_file()


# --- the results files -------------------------------------------------------
def _results(models=('a', 'b')):
    cells = {}
    for m in models:
        for key, miou in (('clean|0', 0.8), ('fog|2', 0.6)):
            cells[f'{m}|{key}|ss'] = dict(miou=miou, ece=0.05,
                                          non_distinctiveness=0.01)
    return dict(complete=True, models=list(models), cells=cells,
                settings=dict(corruptions=['fog'], severities=[2], msc=False,
                              ood_datasets=[], seed=0))


def test_results_files_are_complete_with_a_schema_version(tmp_path):
    paths = write_robustness_results(str(tmp_path), _results())
    data = load_robustness_results(paths['json'])
    assert data['schema_version'] == ROBUSTNESS_SCHEMA_VERSION
    assert open(paths['csv']).read().splitlines()[1] == \
        'a,False,clean,0,0.8,0.05,0.01'
    assert _leftovers(tmp_path) == []
    text = api.summary_text(data, paths)
    assert text.splitlines()[0].startswith(f'results: {paths["md"]}')
    assert 'a: clean mIoU 80.00, corrupted 60.00 (relative 0.750)' in text


def test_an_old_file_with_a_bar_in_a_name_writes_whole_tables(tmp_path):
    """Cell keys split from the right, table cells escaped: a name with a
    '|' (refused now, possible in an older file) breaks nothing."""
    assert parse_cell_key('a|b|fog|2|msc') == ('a|b', 'fog', 2, True)
    paths = write_robustness_results(str(tmp_path), _results(('a|b', 'c')))
    assert open(paths['csv']).read().splitlines()[1].startswith('a|b,False')
    assert '| a\\|b | 0 (clean) |' in open(paths['md']).read()
    assert _leftovers(tmp_path) == []


def test_a_failing_figure_writes_no_results_file(tmp_path, monkeypatch):
    import mmseg_ood.reports.robustness as reports

    def broken(*args):
        raise RuntimeError('figure failed')
    monkeypatch.setattr(reports, 'plot_severity', broken)
    with pytest.raises(RuntimeError, match='figure failed'):
        write_robustness_results(str(tmp_path), _results())
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('mutate, message', [
    (lambda p: p.update(schema_version=9), 'newer than this mmseg_ood'),
    (lambda p: p.update(complete=False), 'marked incomplete'),
    (lambda p: p.update(models='a'), "the field 'models' must be a list"),
    (lambda p: p['cells'].pop('b|clean|0|ss'), "model 'b' has no clean cell"),
    (lambda p: p['settings'].update(severities=['2']),
     "'severities' must be a list of ints"),
    (lambda p: p['cells']['a|fog|2|ss'].update(ece=[0.1]),
     "cells['a|fog|2|ss']: the field 'ece' must be a number or null"),
])
def test_damaged_results_are_named(tmp_path, mutate, message):
    payload = _results()
    mutate(payload)
    path = tmp_path / 'robustness.json'
    path.write_text(json.dumps(payload))
    with pytest.raises(DamagedFileError, match=re.escape(message)) as e:
        load_robustness_results(str(path))
    assert str(path) in str(e.value)
    with pytest.raises(MissingInputError):
        load_robustness_results(str(tmp_path / 'none.json'))


def test_check_model_names_is_the_one_rule():
    with pytest.raises(InvalidValueError, match='twice'):
        api.check_model_names(['m', 'm'])
    with pytest.raises(OutputPathError):
        # a work dir whose parent is a file cannot be created
        from mmseg_ood.utils.files import check_output_dir
        check_output_dir(osp.join(__file__, 'sub'))
