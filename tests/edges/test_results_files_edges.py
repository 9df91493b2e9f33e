"""Results files at their edges: ``results.json`` / ``.csv`` / ``.md``,
``per_image.csv``, ``meta_results.json`` and the figures are written
atomically, carry a schema version, and read back with a named error for
anything malformed."""
import json
import os
import os.path as osp

import pytest

from mmseg_ood.errors import (DamagedFileError, MissingInputError,
                              OutputPathError)
from mmseg_ood.reports.results import (RESULTS_SCHEMA_VERSION, load_results,
                                       markdown_table, md_cell, save_figure,
                                       write_per_image, write_results)
from mmseg_ood.reports.segments import (META_RESULTS_SCHEMA_VERSION,
                                        load_meta_results, write_meta_results)


def _leftovers(folder):
    return sorted(f for f in os.listdir(folder) if '.tmp' in f)


def _payload(**extra):
    row = dict(auroc=0.9, ap=0.5, fpr95=0.3, siou=0.2, ppv=0.1, mean_f1=0.4,
               num_ood=10, num_id=90)
    return dict(complete=True, id_miou=dict(test_set=71.5),
                results=dict(ood=dict(energy=row, msp=dict(row, ap=0.25))),
                **extra)


def _write(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return str(path)


# --- writing -----------------------------------------------------------------
def test_results_carry_the_schema_version_and_read_back(tmp_path):
    paths = write_results(str(tmp_path), _payload())
    data = json.load(open(paths['json']))
    assert data['schema_version'] == RESULTS_SCHEMA_VERSION
    assert load_results(paths['json'])['results']['ood']['msp']['ap'] == 0.25
    assert _leftovers(tmp_path) == []


def test_nan_metrics_are_null_empty_and_n_a(tmp_path):
    payload = _payload()
    payload['results']['ood']['energy']['auroc'] = float('nan')
    payload['id_miou']['test_set'] = None
    paths = write_results(str(tmp_path), payload)
    text = open(paths['json']).read()
    assert 'NaN' not in text
    assert load_results(paths['json'])['results']['ood']['energy'][
        'auroc'] is None
    csv_lines = open(paths['csv']).read().splitlines()
    assert csv_lines[1].startswith('ood,energy,,0.5,')
    md = open(paths['md']).read()
    assert '| energy | n/a | 50.00 |' in md
    assert 'test_set: n/a' in md


def test_rows_with_other_columns_share_one_csv(tmp_path):
    """A scorer with a bootstrap interval next to one without (undefined):
    one header holding every column, the missing cells empty (this raised
    a ValueError inside the CSV writer, after results.json was written)."""
    payload = _payload()
    payload['results']['ood']['energy']['ap_ci'] = [0.4, 0.6]
    paths = write_results(str(tmp_path), payload)
    header, energy, msp = open(paths['csv']).read().splitlines()
    assert header.endswith('ap_ci_low,ap_ci_high')
    assert energy.endswith('0.4,0.6') and msp.endswith(',,')


def test_a_failure_while_making_the_tables_keeps_the_previous_files(
        tmp_path, monkeypatch):
    write_results(str(tmp_path), _payload())
    before = {n: (tmp_path / n).read_bytes()
              for n in ('results.json', 'results.csv', 'results.md')}
    import mmseg_ood.reports.results as results

    def broken(run):
        raise RuntimeError('run record unreadable')
    monkeypatch.setattr(results, 'run_markdown', broken)
    with pytest.raises(RuntimeError, match='unreadable'):
        write_results(str(tmp_path), _payload(run=dict(seed=1)))
    for name, data in before.items():
        assert (tmp_path / name).read_bytes() == data, name
    assert _leftovers(tmp_path) == []


def test_a_failing_write_leaves_no_partial_file(tmp_path, monkeypatch):
    write_results(str(tmp_path), _payload())
    old = (tmp_path / 'results.csv').read_bytes()
    import mmseg_ood.utils.files as files
    real = files.os.replace

    def full_disk(src, dst):
        if dst.endswith('results.csv'):
            raise OSError(28, 'No space left on device')
        return real(src, dst)
    monkeypatch.setattr(files.os, 'replace', full_disk)
    with pytest.raises(OSError, match='No space'):
        write_results(str(tmp_path), _payload())
    assert (tmp_path / 'results.csv').read_bytes() == old
    assert _leftovers(tmp_path) == []


def test_a_work_dir_that_is_a_file_is_refused(tmp_path):
    work = tmp_path / 'work'
    work.write_text('not a folder')
    with pytest.raises(OutputPathError, match='is a file'):
        write_results(str(work), _payload())
    assert work.read_text() == 'not a folder'


def test_per_image_csv_is_atomic_and_checked(tmp_path):
    path = tmp_path / 'per_image.csv'
    rows = {'ood': [dict(image='a.png', scorer='energy', auroc=float('nan'),
                         ap=0.5, fpr95=0.1, skipped='')]}
    assert write_per_image(str(path), rows) == str(path)
    lines = path.read_text().splitlines()
    assert lines[0] == ('dataset,image,scorer,auroc,ap,fpr95,id_pixels,'
                        'ood_pixels,void_pixels,ood_share,ood_components,'
                        'skipped')
    assert lines[1] == 'ood,a.png,energy,,0.5,0.1,,,,,,'
    # no rows: the header alone
    write_per_image(str(path), {})
    assert path.read_text().strip() == lines[0]
    with pytest.raises(OutputPathError, match='does not exist'):
        write_per_image(str(tmp_path / 'nowhere' / 'p.csv'), rows)
    assert _leftovers(tmp_path) == []


def test_a_name_holding_a_bar_keeps_the_table_whole():
    table = markdown_table({'a|b': {'x|y': dict(auroc=0.5)}})
    head, _, row = table.splitlines()[:3]
    assert row.startswith('| x\\|y |')
    # as many unescaped separators in the row as in the header
    def count(line):
        return line.replace('\\|', '').count('|')
    assert count(row) == count(head)
    assert md_cell('two\nlines') == 'two lines'


def test_a_failing_figure_keeps_the_old_png(tmp_path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    path = tmp_path / 'roc.png'
    path.write_bytes(b'old png')
    fig, ax = plt.subplots()

    def broken(*args, **kwargs):
        open(args[0], 'wb').write(b'half')
        raise RuntimeError('renderer crashed')
    fig.savefig = broken
    with pytest.raises(RuntimeError, match='renderer crashed'):
        save_figure(fig, str(path))
    assert path.read_bytes() == b'old png'
    assert _leftovers(tmp_path) == []
    assert not plt.fignum_exists(fig.number)  # closed all the same
    fig, _ = plt.subplots()
    save_figure(fig, str(path))
    assert path.read_bytes()[:4] == b'\x89PNG'
    with pytest.raises(OutputPathError, match='is a folder'):
        save_figure(plt.subplots()[0], str(tmp_path))


# --- reading -----------------------------------------------------------------
def test_a_file_without_schema_version_is_version_0(tmp_path):
    path = _write(tmp_path / 'results.json', _payload())
    assert load_results(path)['results']['ood']['energy']['ap'] == 0.5


@pytest.mark.parametrize('text, message', [
    ('', 'not valid JSON'),
    ('{"results": {"ood": {"energy": {"auroc": 0.9', 'not valid JSON'),
    ('[1, 2]', 'expected a JSON object, got list'),
    ('"text"', 'expected a JSON object, got str'),
    ('[' * 100000 + ']' * 100000, 'nested too deeply'),
])
def test_damaged_results_files_are_named(tmp_path, text, message):
    path = tmp_path / 'results.json'
    path.write_text(text)
    with pytest.raises(DamagedFileError, match=message) as e:
        load_results(str(path))
    assert str(path) in str(e.value)


def test_a_non_utf8_results_file_is_named(tmp_path):
    path = tmp_path / 'results.json'
    path.write_bytes(b'\x80\x04\x95 pickle, not JSON')
    with pytest.raises(DamagedFileError, match='not UTF-8'):
        load_results(str(path))
    with pytest.raises(MissingInputError, match='not found'):
        load_results(str(tmp_path / 'missing.json'))
    with pytest.raises(DamagedFileError, match='is a folder'):
        load_results(str(tmp_path))


def _mutated(mutate):
    payload = _payload()
    mutate(payload)
    return payload


@pytest.mark.parametrize('mutate, message', [
    (lambda p: p.update(schema_version=RESULTS_SCHEMA_VERSION + 1),
     'newer than this mmseg_ood reads'),
    (lambda p: p.update(schema_version='1'), 'schema_version must be an int'),
    (lambda p: p.pop('results'), "the field 'results' is missing"),
    (lambda p: p.update(results=[1, 2]), "'results' must be an object"),
    (lambda p: p['results'].update(ood=[0.9]),
     "results: the field 'ood' must be an object, got list"),
    (lambda p: p['results']['ood'].update(energy='0.9'),
     "results.ood: the field 'energy' must be an object"),
    (lambda p: p['results']['ood']['energy'].update(auroc='0.9'),
     "results.ood.energy: the field 'auroc' must be a number or null"),
    (lambda p: p['results']['ood']['energy'].update(ap=[0.5]),
     "the field 'ap' must be a number or null, got list"),
    (lambda p: p['results']['ood']['energy'].update(num_ood=True),
     "'num_ood' must be a number or null, got bool"),
    (lambda p: p['results']['ood']['energy'].update(ap_ci=[0.1]),
     "'ap_ci' must be two numbers"),
    (lambda p: p.update(complete='yes'), "'complete' must be true or false"),
    (lambda p: p.update(id_miou=dict(test_set='71')),
     "id_miou: the field 'test_set' must be a number"),
    (lambda p: p.update(background_iou=dict(tex=dict(applicable=True,
                                                     pooled='90'))),
     "background_iou.tex: the field 'pooled'"),
    (lambda p: p.update(open_set_iou=dict(thresholds=[0.1, 0.2], miou=[50],
                                          plain=60)),
     'thresholds and miou must be lists of numbers of one length'),
])
def test_wrong_structures_are_named_by_field(tmp_path, mutate, message):
    path = _write(tmp_path / 'results.json', _mutated(mutate))
    with pytest.raises(DamagedFileError, match=message) as e:
        load_results(path)
    assert path in str(e.value)


# --- meta_results.json -------------------------------------------------------
def _meta_payload():
    errors = dict(fp=3, fn=1, errors=4, tp=5, segments=8, objects=6,
                  id_miss_rate=0.01)
    row = dict(images=2, baseline=errors, meta=dict(errors, fp=1, errors=2),
               msp_auroc=0.7, msp_auprc=0.5, meta_auroc=0.8, meta_auprc=0.6,
               cv='leave one image out (2 images)')
    return dict(complete=True, scorer='entropy', cv='auto',
                results=dict(ood={'0.5': row, '0.7': dict(row, meta=None)}))


def test_meta_results_round_trip_with_schema_version(tmp_path):
    paths = write_meta_results(str(tmp_path), _meta_payload())
    data = load_meta_results(paths['json'])
    assert data['schema_version'] == META_RESULTS_SCHEMA_VERSION
    assert data['results']['ood']['0.7']['meta'] is None
    assert osp.getsize(paths['png_ood']) > 0
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize('mutate, message', [
    (lambda p: p.update(schema_version=META_RESULTS_SCHEMA_VERSION + 5),
     'newer than this mmseg_ood reads'),
    (lambda p: p.update(complete=False), 'marked incomplete'),
    (lambda p: p['results'].update(ood=[]), "the field 'ood' must be an "
     'object'),
    (lambda p: p['results']['ood'].update(high={}), "threshold 'high' is not"
     ' a number'),
    (lambda p: p['results']['ood']['0.5'].pop('baseline'),
     "results.ood.0.5: the field 'baseline' is missing"),
    (lambda p: p['results']['ood']['0.5']['baseline'].update(fp='3'),
     "results.ood.0.5.baseline: the field 'fp' must be an int"),
    (lambda p: p['results']['ood']['0.5'].update(meta=[1]),
     "the field 'meta' must be an object or null"),
])
def test_damaged_meta_results_are_named(tmp_path, mutate, message):
    payload = _meta_payload()
    mutate(payload)
    path = _write(tmp_path / 'meta_results.json', payload)
    with pytest.raises(DamagedFileError, match=message) as e:
        load_meta_results(path)
    assert path in str(e.value)


def test_meta_results_tables_come_before_any_file(tmp_path):
    """A payload the tables cannot be made of (a dataset without a
    threshold) writes nothing."""
    payload = _meta_payload()
    payload['results']['empty'] = {}
    with pytest.raises(KeyError, match='no segment results at any'):
        write_meta_results(str(tmp_path), payload)
    assert os.listdir(tmp_path) == []
