"""The analysis tools at their edges (compare_results, training_curves,
seed_summary): a damaged or foreign input file is one named line (exit 2),
outputs are checked before any is written, and each run ends with a
summary line."""
import json
import os
import os.path as osp

import pytest

from mmseg_ood.errors import DamagedFileError, MissingInputError, OODNotice
from mmseg_ood.reports.results import RESULTS_SCHEMA_VERSION
from mmseg_ood.tools.analysis import (compare_results, seed_summary,
                                      training_curves)


def _one_line_error(capsys, tool, main, argv, *needles):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f'{tool}: error: '), err
    for needle in needles:
        assert needle in err, err
    return err


def _results(datasets=('lost',), ap=0.5, **extra):
    row = dict(auroc=0.9, ap=ap, fpr95=0.3)
    return dict(dict(complete=True, id_miou=dict(test_set=70.0),
                     results={d: dict(energy=dict(row),
                                      msp=dict(row, ap=0.1))
                              for d in datasets}), **extra)


def _write(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload if isinstance(payload, str) else
                    json.dumps(payload))
    return str(path)


def _run(root, name, payload):
    return _write(root / name / 'ood' / 'results.json', payload)


# --- compare_results ---------------------------------------------------------
def test_the_default_dataset_is_the_one_the_results_hold(tmp_path, capsys):
    """No --dataset: the datasets every run has (the old default,
    synthetic_objects_ood, is in neither)."""
    _run(tmp_path, 'a', _results(('lost', 'road')))
    _run(tmp_path, 'b', _results(('road', ), ap=0.25))
    compare_results.main([str(tmp_path), 'a', 'b'])
    out, err = capsys.readouterr()
    assert '| a | 70.00 | energy | 90.00 | 50.00 | 30.00 |' in out
    assert '| b | 70.00 | energy | 90.00 | 25.00 | 30.00 |' in out
    # the summary on stderr: stdout is the table alone
    assert 'compare_results:' not in out
    assert err.strip() == 'compare_results: 2 run(s) on road'


def test_several_common_datasets_give_a_table_each(tmp_path, capsys):
    for name in ('a', 'b'):
        _run(tmp_path, name, _results(('lost', 'road')))
    out_md = tmp_path / 'table.md'
    compare_results.main([str(tmp_path), 'a', 'b', '--out', str(out_md)])
    text = out_md.read_text()
    assert '**lost**' in text and '**road**' in text
    assert capsys.readouterr().err.strip().endswith(
        f'on lost, road; wrote {out_md}')


def test_a_named_dataset_a_run_lacks_names_the_run(tmp_path, capsys):
    _run(tmp_path, 'a', _results(('lost', )))
    path = _run(tmp_path, 'b', _results(('road', )))
    _one_line_error(capsys, 'compare_results', compare_results.main,
                    [str(tmp_path), 'a', 'b', '--dataset', 'lost'],
                    "run 'b'", path, "no results on 'lost'",
                    "it has ['road']")


def test_no_common_dataset_lists_each_runs(tmp_path, capsys):
    _run(tmp_path, 'a', _results(('lost', )))
    _run(tmp_path, 'b', _results(('road', )))
    _one_line_error(capsys, 'compare_results', compare_results.main,
                    [str(tmp_path), 'a', 'b'], 'no dataset has results in '
                    "every run ('a': ['lost']; 'b': ['road'])")


@pytest.mark.parametrize('text, needle', [
    ('{"results": {"lost": {"energy": {"auroc": 0.9, "ap"',
     'is not valid JSON'),
    ('', 'is not valid JSON'),
    ('[]', 'expected a JSON object, got list'),
    (json.dumps(_results(schema_version=RESULTS_SCHEMA_VERSION + 1)),
     'newer than this mmseg_ood reads'),
    (json.dumps(dict(results=dict(lost=[1]))),
     "the field 'lost' must be an object"),
    (json.dumps(_results(complete=False)), 'incomplete'),
])
def test_a_damaged_results_file_is_one_named_line(tmp_path, capsys, text,
                                                  needle):
    _run(tmp_path, 'a', _results())
    path = _run(tmp_path, 'b', text)
    err = _one_line_error(capsys, 'compare_results', compare_results.main,
                          [str(tmp_path), 'a', 'b', '--dataset', 'lost'],
                          needle)
    assert path in err or "'b'" in err


def test_nan_metrics_show_as_n_a(tmp_path, capsys):
    payload = _results()
    payload['results']['lost']['energy']['ap'] = None
    payload['id_miou'] = None
    _run(tmp_path, 'a', payload)
    compare_results.main([str(tmp_path), 'a'])
    assert '| a | n/a | energy | 90.00 | n/a | 30.00 |' in \
        capsys.readouterr().out


@pytest.mark.parametrize('where, needle', [
    ('folder', 'is a folder'),
    ('missing', 'does not exist'),
    ('input', 'is the input'),
])
def test_outputs_are_checked_before_anything_is_written(tmp_path, capsys,
                                                        where, needle):
    path = _run(tmp_path, 'a', _results())
    before = open(path, 'rb').read()
    out = {'folder': str(tmp_path), 'missing': str(tmp_path / 'no' / 'x.md'),
           'input': path}[where]
    violins = tmp_path / 'v.png'
    _one_line_error(capsys, 'compare_results', compare_results.main,
                    [str(tmp_path), 'a', '--out', out, '--violins',
                     str(violins)], '--out', needle)
    assert open(path, 'rb').read() == before
    assert not violins.exists()


def test_a_symlink_to_an_input_is_the_input(tmp_path, capsys):
    path = _run(tmp_path, 'a', _results())
    link = tmp_path / 'table.md'
    os.symlink(path, link)
    before = open(path, 'rb').read()
    _one_line_error(capsys, 'compare_results', compare_results.main,
                    [str(tmp_path), 'a', '--out', str(link)], 'is the input')
    assert open(path, 'rb').read() == before


def test_missing_runs_and_roots_are_one_line(tmp_path, capsys):
    _one_line_error(capsys, 'compare_results', compare_results.main,
                    [str(tmp_path / 'nowhere'), 'a'], 'does not exist')
    _one_line_error(capsys, 'compare_results', compare_results.main,
                    [str(tmp_path), 'a'], 'a/ood/results.json not found',
                    'tools/ood_test.py')
    with pytest.raises(SystemExit) as e:
        compare_results.main([str(tmp_path), 'a', 'a'])
    assert e.value.code == 2
    assert "NAME 'a' is given twice" in capsys.readouterr().err


def test_a_bar_in_a_run_name_keeps_the_table_whole(tmp_path, capsys):
    _run(tmp_path, 'x|y', _results())
    compare_results.main([str(tmp_path), 'x|y'])
    assert '| x\\|y | 70.00 | energy |' in capsys.readouterr().out


def test_seed_roots_default_to_the_common_dataset(tmp_path, capsys):
    for i, ap in enumerate((0.4, 0.5)):
        _run(tmp_path / f's{i}', 'a', _results(('road', ), ap=ap))
    compare_results.main([str(tmp_path / 's0'), 'a', '--seed-roots',
                          str(tmp_path / 's1'), '--scorers', 'energy'])
    out, err = capsys.readouterr()
    assert '45.00 ± 7.07 (40.00-50.00)' in out
    assert 'over 2 seed roots on road' in err
    _run(tmp_path / 's2', 'a', '{"results": ')
    _one_line_error(capsys, 'compare_results', compare_results.main,
                    [str(tmp_path / 's0'), 'a', '--seed-roots',
                     str(tmp_path / 's2')], 's2/a/ood/results.json',
                    'not valid JSON')


def _meta(datasets=('lost', )):
    errors = dict(fp=3, fn=1, errors=4, tp=5, segments=8, objects=6,
                  id_miss_rate=0.0)
    row = dict(images=2, baseline=errors, meta=None, msp_auroc=0.7,
               msp_auprc=0.5, meta_auroc=None, meta_auprc=None)
    return dict(complete=True, scorer='entropy', cv='auto',
                results={d: {'0.5': row} for d in datasets})


def test_segments_default_dataset_and_damaged_files(tmp_path, capsys):
    _write(tmp_path / 'a' / 'meta' / 'meta_results.json', _meta(('road', )))
    out = tmp_path / 'seg.md'
    compare_results.main([str(tmp_path), 'a', '--segments', '--out',
                          str(out)])
    assert (tmp_path / 'seg.png').is_file()
    assert 'Fig. 7 (road)' in out.read_text()
    assert capsys.readouterr().err.strip().endswith(
        f'wrote {out}, {tmp_path / "seg.png"}')
    bad = _meta()
    bad['results']['lost']['0.5']['baseline'] = [3, 1]
    path = _write(tmp_path / 'b' / 'meta' / 'meta_results.json', bad)
    _one_line_error(capsys, 'compare_results', compare_results.main,
                    [str(tmp_path), 'b', '--segments'], path,
                    "the field 'baseline' must be an object")


def test_violins_of_a_damaged_distributions_file(tmp_path, capsys):
    _run(tmp_path, 'a', _results())
    dist = tmp_path / 'a' / 'ood' / 'distributions' / 'lost.json'
    _write(dist, '{"schema": 1, "scorers": {"entropy"')
    _one_line_error(capsys, 'compare_results', compare_results.main,
                    [str(tmp_path), 'a', '--violins',
                     str(tmp_path / 'v.png')], str(dist), 'not valid JSON')
    assert not (tmp_path / 'v.png').exists()


# --- training_curves ---------------------------------------------------------
def _scalars(tmp_path, *lines, name='run'):
    folder = tmp_path / name / '20260101_000000' / 'vis_data'
    folder.mkdir(parents=True)
    path = folder / 'scalars.json'
    if lines and isinstance(lines[0], bytes):
        path.write_bytes(lines[0])
    else:
        path.write_text(''.join(line + '\n' for line in lines))
    return str(tmp_path / name), str(path)


TRAIN = [json.dumps(dict(loss=2.0 - i / 4, step=i)) for i in (1, 2, 3)]
VAL = json.dumps({'mIoU': 40.0, 'IoU.road': 80.0, 'step': 2})


def test_lines_that_cannot_be_plotted_are_skipped_with_a_notice(tmp_path):
    from mmseg_ood.reports.training_log import read_scalars
    work, path = _scalars(
        tmp_path, TRAIN[0], json.dumps(dict(loss=[1.5, 1.4], lr=0.1,
                                            step=2)),
        json.dumps(dict(loss=1.2)), VAL, TRAIN[2], '{"loss": 1.0, "st')
    with pytest.warns(OODNotice) as notes:
        data = read_scalars(work)
    assert len(notes) == 1
    note = str(notes[0].message)
    for needle in (path, 'last line (6) is cut short',
                   '1 line(s) have no iteration', "'loss' (line 2)"):
        assert needle in note, note
    # the training line whose loss is a list is left out whole
    assert [r['step'] for r in data['train']] == [1, 3]
    assert data['val'] == [{'mIoU': 40.0, 'IoU.road': 80.0, 'step': 2}]


def test_iter_is_read_as_step(tmp_path):
    from mmseg_ood.reports.training_log import read_scalars
    work, _ = _scalars(tmp_path, json.dumps(dict(loss=1.0, iter=7)))
    assert read_scalars(work)['train'] == [dict(step=7, loss=1.0)]


@pytest.mark.parametrize('lines, needle', [
    ((), 'holds no scalars at an iteration'),
    ((json.dumps(dict(loss=1)), ), 'holds no scalars at an iteration'),
    ((TRAIN[0], '[1, 2]', TRAIN[1]), 'line 2 is a list, not an object'),
    (('3', ), 'line 1 is a number, not an object'),
    ((TRAIN[0], '{broken', TRAIN[1]), 'line 2 is not JSON'),
    ((b'{"loss": 1.0, "step": 1}\n\xff\xfe\n', ), 'not UTF-8'),
])
def test_scalars_of_the_wrong_shape_are_named(tmp_path, capsys, lines,
                                              needle):
    from mmseg_ood.reports.training_log import read_scalars
    work, path = _scalars(tmp_path, *lines)
    with pytest.raises(DamagedFileError, match=needle) as e:
        read_scalars(work)
    assert path in str(e.value)
    out = tmp_path / 'curves'
    _one_line_error(capsys, 'training_curves', training_curves.main,
                    [work, '--out', str(out)], path, needle)
    assert not out.exists()


def test_training_curves_tool_edges(tmp_path, capsys):
    work, _ = _scalars(tmp_path, *TRAIN, VAL, json.dumps(
        {'loss': 1.0, 'step': 4, 'uoi.max_term': 5.0,
         'uoi.max_term_class': float('nan')}))
    out = tmp_path / 'curves'
    training_curves.main([work, '--out', str(out)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2] == (f'training_curves: 1 run(s); wrote '
                         f'{out / "training_curves.md"}, '
                         f'{out / "training_curves.png"}')
    assert lines[-1] == ('  run: 4 training line(s), last loss 1 at 4, '
                         'best mIoU 40.00 at 2')
    assert '| 4 | 5 | n/a |' in (out / 'training_curves.md').read_text()
    # a missing work dir, an output that is a file, two runs of one name
    _one_line_error(capsys, 'training_curves', training_curves.main,
                    [str(tmp_path / 'none'), '--out', str(out)],
                    'does not exist')
    afile = tmp_path / 'afile'
    afile.write_text('x')
    _one_line_error(capsys, 'training_curves', training_curves.main,
                    [work, '--out', str(afile)], 'is a file')
    other, _ = _scalars(tmp_path / 'second', *TRAIN)
    with pytest.raises(SystemExit) as e:
        training_curves.main([work, other, '--out', str(out)])
    assert e.value.code == 2
    assert "two runs are named 'run'" in capsys.readouterr().err


# --- seed_summary ------------------------------------------------------------
def _robustness(ece):
    cells = {'m|clean|0|ss': dict(miou=0.9, ece=ece, non_distinctiveness=0.1),
             'm|fog|5|ss': dict(miou=0.6, ece=ece * 2,
                                non_distinctiveness=0.2)}
    return dict(schema_version=2, complete=True, models=['m'], cells=cells,
                settings=dict(corruptions=['fog'], severities=[5],
                              msc=False, ood_datasets=[]))


def test_seed_summary_edges(tmp_path, capsys):
    roots = []
    for i, ece in enumerate((0.01, 0.03)):
        root = tmp_path / f's{i}'
        _write(root / 'robustness' / 'robustness.json', _robustness(ece))
        roots.append(str(root))
    out = tmp_path / 'sum' / 'summary.md'
    seed_summary.main(roots + ['--out', str(out)])
    assert '| clean ECE | 2.00 ± 1.41 (1.00-3.00) |' in out.read_text()
    assert capsys.readouterr().err.strip() == (
        f'seed_summary: 2 seeds, 1 model(s), background IoU of 0; wrote '
        f'{out}')
    # --out naming an input is refused; the input is unchanged
    first = osp.join(roots[0], 'robustness', 'robustness.json')
    before = open(first, 'rb').read()
    _one_line_error(capsys, 'seed_summary', seed_summary.main,
                    roots + ['--out', first], 'is the input')
    assert open(first, 'rb').read() == before
    # a truncated file, a newer one, a missing one: one named line each
    _write(tmp_path / 's1' / 'robustness' / 'robustness.json',
           '{"schema_version": 2, "cells": {')
    _one_line_error(capsys, 'seed_summary', seed_summary.main, roots,
                    's1/robustness/robustness.json', 'not valid JSON')
    _write(tmp_path / 's1' / 'robustness' / 'robustness.json',
           dict(_robustness(0.1), schema_version=3))
    _one_line_error(capsys, 'seed_summary', seed_summary.main, roots,
                    'schema version 3, newer')
    _one_line_error(capsys, 'seed_summary', seed_summary.main,
                    [roots[0], str(tmp_path / 'none')],
                    'none/robustness/robustness.json not found')
    with pytest.raises(SystemExit) as e:
        seed_summary.main([roots[0], roots[0]])
    assert e.value.code == 2


def test_seed_summary_background_results_are_checked(tmp_path, capsys):
    roots = []
    for i in range(2):
        root = tmp_path / f's{i}'
        _write(root / 'robustness' / 'robustness.json', _robustness(0.01))
        _write(root / 'background_iou' / 'm' / 'results.json',
               dict(results={}, background_iou=dict(
                   tex=dict(applicable=True, pooled=90.0 + i))))
        roots.append(str(root))
    seed_summary.main(roots)
    assert '| tex | 90.50 ± 0.71 (90.00-91.00) |' in capsys.readouterr().out
    _write(tmp_path / 's1' / 'background_iou' / 'm' / 'results.json',
           dict(results={}, background_iou=dict(tex=dict(
               applicable=True, pooled=[90]))))
    _one_line_error(capsys, 'seed_summary', seed_summary.main, roots,
                    "background_iou.tex: the field 'pooled'")
    with pytest.raises(MissingInputError):
        from mmseg_ood.reports.results import load_results
        load_results(str(tmp_path / 'none.json'))


# --- meta_classify --save ---------------------------------------------------
def test_meta_classify_save_is_checked_before_the_run(tmp_path, capsys):
    """``--save`` naming the checkpoint (or a link to it), in a folder
    that is a file: refused before any model is loaded, the checkpoint
    unchanged."""
    from conftest import STREET_CONFIG

    from mmseg_ood.tools import meta_classify
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'weights')
    link = tmp_path / 'meta.json'
    link.symlink_to(ckpt)
    afile = tmp_path / 'afile'
    afile.write_text('x')
    for save, needle in ((ckpt, 'is the input'), (link, 'is the input'),
                         (afile / 'meta.json', 'is a file'),
                         (tmp_path, 'is a folder')):
        _one_line_error(capsys, 'meta_classify', meta_classify.main,
                        [STREET_CONFIG, str(ckpt), '--work-dir',
                         str(tmp_path / 'w'), '--save', str(save)],
                        needle)
    assert ckpt.read_bytes() == b'weights'
    assert not (tmp_path / 'w').exists()


def test_meta_classify_save_over_its_own_results_is_named(tmp_path):
    from mmseg_ood.apis.meta_classify import work_dir_output
    work = str(tmp_path / 'w')
    assert work_dir_output(work, osp.join(work, 'meta_results.json'))
    assert work_dir_output(work, osp.join(work, 'detection_errors_x.png'))
    assert not work_dir_output(work, osp.join(work, 'meta.json'))
    assert not work_dir_output(work, str(tmp_path / 'meta_results.json'))
