"""Segment-wise evaluation (entropy-maximization paper, eq. 8-10) and the
meta-classified score maps."""
import numpy as np
import pytest
import torch

from mmseg_ood.engine import filter_score_map
from mmseg_ood.evaluation import OODSegmentMetric, detection_errors
from mmseg_ood.meta import MetaClassifier
from mmseg_ood.meta.segments import feature_names

H, W = 6, 8


def hand_case():
    """Score map and OOD labels (0 ID, 1 OOD, 255 void):

    - segment A, rows 0-1 x cols 0-1, on OOD object 1 and one ID pixel: TP;
    - segment B, the pixel (4, 6), on ID: FP;
    - segment C, (4, 2)-(4, 3), on void only: ignored;
    - OOD object 2, (2..3, 5), scored low: missed (FN).
    """
    score = np.zeros((H, W), np.float32)
    score[0:2, 0:2] = 0.9
    score[4, 6] = 0.8
    score[4, 2:4] = 0.7
    labels = np.zeros((H, W), np.uint8)
    labels[0:2, 0] = 1
    labels[2:4, 5] = 1
    labels[4, 1:5] = 255
    return score, labels


def sample(score, labels, key, q=3, seed=0):
    logits = torch.from_numpy(np.random.default_rng(seed).normal(
        size=(q, H, W))).float()
    return dict(img_path=key, seg_logits=dict(data=logits),
                ood_scores=dict(entropy=torch.from_numpy(score)),
                gt_sem_seg=dict(data=torch.from_numpy(labels)[None]))


def test_errors_on_a_constructed_case():
    score, labels = hand_case()
    m = OODSegmentMetric(thresholds=[0.5])
    m.process({}, [sample(score, labels, 'a.png')])
    out = m.evaluate(1)
    pre = 'segments/entropy@0.5/'
    assert out[pre + 'tp'] == 1 and out[pre + 'fp'] == 1
    assert out[pre + 'segments'] == 2          # C is ignored
    assert out[pre + 'objects'] == 2 and out[pre + 'fn'] == 1
    assert out[pre + 'errors'] == 2
    num_id = int((labels == 0).sum())
    # ID pixels predicted OOD: two in A, one in B
    assert out[pre + 'id_miss_rate'] == pytest.approx(3 / num_id)
    data = m.last_data[0.5]
    assert data.kind.tolist() == [1, -1, 0]   # raster order: A, C, B
    assert data.features.shape == (3, len(feature_names(3)))


def test_removing_segments_changes_fp_fn_and_the_miss_rate():
    score, labels = hand_case()
    score[2:4, 5] = 0.6        # object 2 now found by segment D ...
    score[2, 4] = 0.6          # ... which also covers one ID pixel
    score[4, 6], score[5, 7] = 0, 0.8  # B moves off D's corner
    m = OODSegmentMetric(thresholds=[0.5])
    m.process({}, [sample(score, labels, 'a.png')])
    m.evaluate(1)
    data = m.last_data[0.5]
    kinds = data.kind.tolist()
    assert sorted(kinds) == [-1, 0, 1, 1]
    num_id = data.num_id
    full = detection_errors(data)
    assert (full['fp'], full['fn'], full['tp']) == (1, 0, 2)
    assert full['id_miss_rate'] == pytest.approx(4 / num_id)
    drop_fp = np.array([k != 0 for k in kinds])
    e = detection_errors(data, drop_fp)
    assert (e['fp'], e['fn'], e['tp'], e['errors']) == (0, 0, 2, 0)
    assert e['id_miss_rate'] == pytest.approx(3 / num_id)
    drop_tp = np.array([k != 1 for k in kinds])
    e = detection_errors(data, drop_tp)
    assert (e['fp'], e['fn'], e['tp']) == (1, 2, 0)
    assert e['id_miss_rate'] == pytest.approx(1 / num_id)


def test_the_table_does_not_depend_on_the_order_of_images():
    rng = np.random.default_rng(3)
    samples = []
    for i in range(4):
        score = rng.random((H, W)).astype(np.float32)
        labels = (rng.random((H, W)) > 0.7).astype(np.uint8)
        samples.append(sample(score, labels, f'{i}.png', seed=i))
    tables = []
    for order in ([0, 1, 2, 3], [2, 0, 3, 1]):
        m = OODSegmentMetric(thresholds=[0.6])
        for i in order:
            m.process({}, [samples[i]])
        out = m.evaluate(4)
        tables.append((out, m.last_data[0.6]))
    (a, da), (b, db) = tables
    assert a == b
    np.testing.assert_array_equal(da.features, db.features)
    np.testing.assert_array_equal(da.touches, db.touches)
    assert da.images == ['0.png', '1.png', '2.png', '3.png']


def test_metric_errors_are_clear():
    score, labels = hand_case()
    s = sample(score, labels, 'a.png')
    with pytest.raises(KeyError, match=r"no 'energy' score map .*a\.png.*"
                       r"scored: \['entropy'\]"):
        OODSegmentMetric(scorer='energy').process({}, [s])
    for bad in ([], 'abc', [float('nan')]):
        with pytest.raises(ValueError, match='`thresholds`'):
            OODSegmentMetric(thresholds=bad)
    clf = MetaClassifier(['S'], 'energy', 0.5)
    with pytest.raises(ValueError, match="fitted on 'energy' segments"):
        OODSegmentMetric(scorer='entropy', meta_classifier=[clf])


def _size_classifier(threshold):
    """Keeps segments of at least 3 pixels (fitted on sizes 1, 2 vs 3,
    4)."""
    return MetaClassifier(['S'], 'entropy', threshold, C=1e4).fit(
        np.array([[1.], [2.], [3.], [4.]]), np.array([0, 0, 1, 1]))


def test_filtered_map_is_the_kept_segments():
    score, _ = hand_case()
    probs = torch.softmax(torch.randn(3, H, W), 0)
    clf = _size_classifier(0.5)
    (filtered, ) = filter_score_map(torch.from_numpy(score), probs, [clf])
    kept = filtered.numpy() >= 0.5
    assert kept.sum() == 4 and kept[0:2, 0:2].all()   # only A (4 px)
    below = np.nextafter(np.float32(0.5), np.float32(-1))
    removed = (score >= 0.5) & ~kept
    assert (filtered.numpy()[removed] == below).all()
    # every other pixel keeps its score
    np.testing.assert_array_equal(filtered.numpy()[~removed], score[~removed])


def test_metric_applies_a_given_classifier():
    score, labels = hand_case()
    m = OODSegmentMetric(meta_classifier=[_size_classifier(0.5)])
    assert m.thresholds == [0.5]
    m.process({}, [sample(score, labels, 'a.png')])
    out = m.evaluate(1)
    meta = 'segments/entropy+meta@0.5/'
    # B (1 px, FP) is removed, A (TP) kept
    assert out[meta + 'fp'] == 0 and out[meta + 'tp'] == 1
    assert out[meta + 'fn'] == 1
    assert out[meta + 'fp_auroc'] == 1.0
    assert m.last_results['0.5']['meta']['errors'] == 1


def test_nan_scores_on_id_or_ood_pixels_are_refused():
    score, labels = hand_case()
    score[0, 0] = np.nan            # an OOD pixel
    with pytest.raises(ValueError, match="'entropy' produced 1 NaN"):
        OODSegmentMetric(thresholds=[0.5]).process(
            {}, [sample(score, labels, 'a.png')])
    score, labels = hand_case()
    score[4, 2] = np.nan            # void: in no segment
    m = OODSegmentMetric(thresholds=[0.5])
    m.process({}, [sample(score, labels, 'a.png')])
    assert m.evaluate(1)['segments/entropy@0.5/fp'] == 1


def test_no_image_gives_undefined_metrics_with_a_warning():
    from mmseg_ood.evaluation.functional.roc_pr import UndefinedMetricWarning
    from mmseg_ood.evaluation.metrics.segment_metric import (SegmentTable,
                                                             segment_results)
    with pytest.warns(UndefinedMetricWarning):
        row = segment_results(SegmentTable(0.5).compute())
    assert row['baseline']['segments'] == 0 and row['images'] == 0
    assert np.isnan(row['msp_auroc']) and np.isnan(
        row['baseline']['id_miss_rate'])


class _Model:
    """A model whose test_step returns fixed data samples."""

    def __init__(self, outputs):
        self.outputs = outputs

    def test_step(self, data):
        return self.outputs


class _Runner:
    def __init__(self, model, hooks=()):
        self.model = model
        self.hooks = list(hooks)


def _outputs(q=3):
    from mmengine.structures import PixelData

    from mmseg.structures import SegDataSample
    score, _ = hand_case()
    out = SegDataSample()
    out.seg_logits = PixelData(data=torch.randn(q, H, W))
    out.set_field(dict(entropy=torch.from_numpy(score)), 'ood_scores')
    return [out]


def test_hook_adds_the_filtered_maps_and_restores_the_model():
    from mmseg_ood.engine import MetaClassifierHook
    model = _Model(_outputs())
    runner = _Runner(model)
    hook = MetaClassifierHook([_size_classifier(0.5), _size_classifier(0.75)])
    hook.before_test(runner)
    (out, ) = model.test_step(None)
    assert set(out.ood_scores) == {'entropy', 'entropy+meta@0.5',
                                   'entropy+meta@0.75'}
    kept = out.ood_scores['entropy+meta@0.5'].numpy() >= 0.5
    assert kept.sum() == 4 and kept[0:2, 0:2].all()
    hook.after_test(runner)
    assert 'test_step' not in vars(model)     # the class's method again
    assert set(model.test_step(None)[0].ood_scores) >= {'entropy'}


def test_hook_errors_and_stale_wrappers():
    from mmseg_ood.engine import MetaClassifierHook
    model = _Model(_outputs())
    runner = _Runner(model)
    hook = MetaClassifierHook([_size_classifier(0.5)])
    other = MetaClassifierHook([_size_classifier(0.5)])
    runner.hooks = [hook, other]
    hook.before_test(runner)
    with pytest.raises(RuntimeError, match='two MetaClassifierHooks'):
        other.before_test(runner)
    hook.after_test(runner)
    energy = MetaClassifierHook([MetaClassifier(['S'], 'energy', 0.5)])
    runner.hooks = [energy]
    energy.before_test(runner)
    with pytest.raises(KeyError, match="reads 'energy' score maps, which "
                       r"this run does not score .*\['entropy'"):
        model.test_step(None)
    # the test raised: after_test never ran, and the pass's hooks were
    # dropped (as EvaluationSession.run_pass does); the next hook removes
    # the stale wrapper first
    runner.hooks = [hook]
    hook.before_test(runner)
    assert model.test_step.meta_classifier_hook is hook
    assert model.test_step.restore is None
    hook.after_test(runner)
    assert 'test_step' not in vars(model)
    q19 = MetaClassifier(['S'], 'entropy', 0.5, num_classes=19)
    q19.pipeline = _size_classifier(0.5).pipeline
    wrong = MetaClassifierHook([q19])
    wrong.before_test(runner)
    with pytest.raises(ValueError, match='with 19 classes; this one has 3'):
        model.test_step(None)
    with pytest.raises(ValueError, match='different scorers'):
        MetaClassifierHook([_size_classifier(0.5),
                            MetaClassifier(['S'], 'energy', 0.7)])


def test_segment_tables_of_two_runs():
    from mmseg_ood.reports.segments import segment_tables_markdown

    def errors(fp, fn, miss):
        return dict(fp=fp, fn=fn, errors=fp + fn, tp=3, segments=fp + 3,
                    objects=9, id_miss_rate=miss)

    def run(fp):
        return dict(results=dict(d={'0.5': dict(
            images=4, baseline=errors(fp, 2, 0.01),
            meta=errors(1, 3, 0.001), msp_auroc=0.6, msp_auprc=0.7,
            meta_auroc=0.9, meta_auprc=0.95, cv='leave one image out')}))

    md = segment_tables_markdown({'a': run(1234), 'b': run(7)}, 'd')
    assert '4 images, 9 ground-truth OOD objects' in md
    assert '| 0.5 | 1,234 | 2 | 1,236 | 1.00 | 1 | 3 | 4 | 0.10 | 7 | 2 ' \
        '| 9 | 1.00 | 1 | 3 | 4 | 0.10 |' in md
    assert '| 0.5 | 0.6000 | 0.7000 | 0.9000 | 0.9500 | 0.6000 |' in md
    assert '- a, t = 0.5: leave one image out' in md
