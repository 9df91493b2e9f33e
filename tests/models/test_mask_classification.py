"""OOD scores of mask-classification heads (MaskFormer, Mask2Former): the
per-query class and mask logits of the final decoder layer, captured in the
same forward pass, scored and post-processed like mmseg's ``seg_logits``."""
import glob
import json
import math
import os
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from conftest import QUICK_OPTIONS, REPO, run_tool, zoo_model_config
from mmseg.structures import SegDataSample
from mmseg_ood.errors import OODNotice
from mmseg_ood.models import OODScoring
from mmseg_ood.scorers import ScoreInputs, UnsupportedScorerError, build_scorer
from test_ood_scoring import batch, build, zoo_model

M2F = 'mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py'
MASKFORMER = 'mmseg::maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py'
LOGIT_SCORERS = ['msp', 'entropy', 'max_logit', 'energy', 'rba', 'no_object']


def small_mask2former(**test_cfg):
    """The model-zoo Mask2Former with a ResNet-18, 10 queries, 3 decoder
    layers and 1 pixel-decoder layer: the same head classes, fast on CPU."""
    cfg = zoo_model_config(M2F, **test_cfg)
    cfg.backbone.depth = 18
    head = cfg.decode_head
    head.in_channels = [64, 128, 256, 512]
    head.num_queries = 10
    head.transformer_decoder.num_layers = 3
    head.pixel_decoder.encoder.num_layers = 1
    return build(cfg.to_dict())


@pytest.fixture(scope='module')
def mask2former():
    return small_mask2former()


def hand_case():
    """Two queries, two known classes, one pixel (worked out below)."""
    # softmax([ln 3, 0, 0]) = [3/5, 1/5, 1/5]; softmax([0, 0, ln 2]) =
    # [1/4, 1/4, 1/2]; the last entry is "no object"
    query_logits = torch.tensor([[[math.log(3), 0., 0.],
                                  [0., 0., math.log(2)]]])
    # the mask probabilities: sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4
    mask_probs = torch.tensor([[0.5, 0.75]]).view(1, 2, 1, 1)
    # f_1 = 3/5 * 1/2 + 1/4 * 3/4 = 0.4875; f_2 = 1/5 * 1/2 + 1/4 * 3/4
    f = torch.tensor([0.4875, 0.2875]).view(1, 2, 1, 1)
    return ScoreInputs(f, head_kind='mask', query_logits=query_logits,
                       mask_probs=mask_probs)


def test_rba_on_a_hand_computed_pixel():
    out = build_scorer('rba')(hand_case())
    expected = -(math.tanh(0.4875) + math.tanh(0.2875))  # -0.7330...
    assert out.shape == (1, 1, 1)
    assert out.item() == pytest.approx(expected, abs=1e-6)
    # rejected by all: no class claims the pixel -> the maximum, 0; rba
    # reads f only (e.g. saved seg_logits of a mask head)
    zero = ScoreInputs(torch.zeros(1, 3, 1, 1), head_kind='mask')
    assert build_scorer('rba')(zero).item() == 0.0


def test_no_object_mass_on_a_hand_computed_pixel():
    out = build_scorer('no_object')(hand_case())
    # (1/5 * 1/2 + 1/2 * 3/4) / (1/2 + 3/4) = 0.475 / 1.25
    assert out.item() == pytest.approx(0.38, abs=1e-6)
    # f and the "no object" term add up to the total mask mass
    x = hand_case()
    total = 0.5 + 0.75
    assert x.logits.sum().item() + out.item() * total == pytest.approx(total)


def test_query_inputs_are_checked():
    f = torch.rand(1, 2, 3, 3)
    with pytest.raises(ValueError, match=r'`query_logits` must be \(N, Q, C '
                       r'\+ 1\) = \(1, Q, 3\)'):
        ScoreInputs(f, head_kind='mask', query_logits=torch.rand(1, 4, 2))
    with pytest.raises(ValueError, match='`mask_probs` must be'):
        ScoreInputs(f, head_kind='mask', query_logits=torch.rand(1, 4, 3),
                    mask_probs=torch.rand(1, 4, 2, 3))
    with pytest.raises(UnsupportedScorerError, match='mask probabilities'):
        build_scorer('no_object')(ScoreInputs(
            f, head_kind='mask', query_logits=torch.rand(1, 4, 3)))
    with pytest.raises(UnsupportedScorerError, match='mask-classification'):
        build_scorer('rba')(ScoreInputs(f))


def final_queries(model):
    """A forward hook keeping the head's final-layer outputs."""
    kept = {}

    def hook(module, args, output):
        kept['cls'], kept['mask'] = output[0][-1], output[1][-1]

    return kept, model.decode_head.register_forward_hook(hook)


@pytest.mark.parametrize('h, w', [(64, 96), (50, 70)])
def test_mask2former_scores_come_from_the_same_forward_pass(mask2former, h,
                                                            w):
    model = mask2former
    with torch.no_grad():
        plain = model.test_step(batch(h, w))[0]
        kept, handle = final_queries(model)
        try:
            with OODScoring(model, LOGIT_SCORERS):
                out = model.test_step(batch(h, w))[0]
        finally:
            handle.remove()
    # mmseg's own outputs are untouched
    torch.testing.assert_close(out.seg_logits.data, plain.seg_logits.data,
                               rtol=0, atol=0)
    assert torch.equal(out.pred_sem_seg.data, plain.pred_sem_seg.data)
    f = out.seg_logits.data  # (K, h, w): un-padded like the maps
    for name in LOGIT_SCORERS:
        assert out.ood_scores[name].shape == (h, w)
        assert torch.isfinite(out.ood_scores[name]).all()
    torch.testing.assert_close(out.ood_scores['rba'], -f.tanh().sum(0))
    torch.testing.assert_close(out.ood_scores['energy'],
                               -torch.logsumexp(f, 0))
    # the "no object" mass from the captured queries, recomputed here with
    # the masks resized as the head resizes them (to the padded input)
    pad = (64, 96)
    masks = F.interpolate(kept['mask'], size=pad, mode='bilinear',
                          align_corners=False).sigmoid()[0, :, :h, :w]
    void = kept['cls'].softmax(-1)[0, :, -1]
    total = masks.sum(0)
    expected = torch.einsum('q,qhw->hw', void, masks) / total
    torch.testing.assert_close(out.ood_scores['no_object'], expected)
    # ... and it is exactly what mmseg's f leaves of the mask mass
    torch.testing.assert_close(out.ood_scores['no_object'],
                               1 - f.sum(0) / total, rtol=1e-4, atol=1e-5)


def test_mask2former_flipped_input_gives_unflipped_maps(mask2former):
    data = batch(64, 96)
    data['data_samples'][0].set_metainfo(
        dict(flip=True, flip_direction='horizontal'))
    with torch.no_grad(), OODScoring(mask2former, ['rba']):
        out = mask2former.test_step(data)[0]
    f = out.seg_logits.data  # un-flipped by mmseg
    torch.testing.assert_close(out.ood_scores['rba'], -f.tanh().sum(0))


def small_maskformer(**test_cfg):
    cfg = zoo_model_config(MASKFORMER, **test_cfg)
    cfg.backbone.depth = 18
    cfg.decode_head.in_channels = [64, 128, 256, 512]
    cfg.decode_head.num_queries = 10
    cfg.decode_head.transformer_decoder.num_layers = 2
    return build(cfg.to_dict())


def test_slide_inference_stitches_the_maps():
    # MaskFormer: Mask2FormerHead.predict resizes every window's masks to
    # the whole padded input (`pad_shape`), so mmseg 1.2.2 itself cannot
    # run Mask2Former with mode='slide'
    model = small_maskformer(mode='slide', crop_size=(64, 64),
                             stride=(32, 32))
    data = batch(64, 128)
    with torch.no_grad(), OODScoring(model, LOGIT_SCORERS):
        out = model.test_step(data)[0]
    for name in LOGIT_SCORERS:
        m = out.ood_scores[name]
        assert m.shape == (64, 128) and torch.isfinite(m).all()
    # each window scored on its own (the same weights, whole inference on
    # the crop), then averaged where windows overlap, as mmseg averages
    # the logits
    whole = small_maskformer()
    img = data['inputs'][0]
    total = torch.zeros(len(LOGIT_SCORERS), 64, 128)
    count = torch.zeros(1, 64, 128)
    with torch.no_grad(), OODScoring(whole, LOGIT_SCORERS):
        for x in (0, 32, 64):
            crop = dict(inputs=[img[:, :, x:x + 64]], data_samples=[
                SegDataSample(metainfo=dict(img_shape=(64, 64),
                                            ori_shape=(64, 64)))])
            maps = whole.test_step(crop)[0].ood_scores
            total[:, :, x:x + 64] += torch.stack(
                [maps[n] for n in LOGIT_SCORERS])
            count[:, :, x:x + 64] += 1
    for k, name in enumerate(LOGIT_SCORERS):
        torch.testing.assert_close(out.ood_scores[name], total[k] / count[0],
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('h, w', [(64, 64), (50, 70)])
def test_maskformer_is_scored_too(h, w):
    model = small_maskformer()
    with torch.no_grad():
        plain = model.test_step(batch(h, w))[0]
        with OODScoring(model, ['rba', 'no_object']):
            out = model.test_step(batch(h, w))[0]
    # no_object makes the wrapper run the head's semantic inference itself:
    # mmseg's outputs must not change by a bit
    assert torch.equal(out.seg_logits.data, plain.seg_logits.data)
    assert torch.equal(out.pred_sem_seg.data, plain.pred_sem_seg.data)
    f = out.seg_logits.data
    if (h, w) == (64, 64):
        # no padding, no resize: the maps are scores of f itself (with
        # padding, MaskFormerHead predicts at the unpadded size and mmseg
        # then crops and resizes f, and the maps alike)
        torch.testing.assert_close(out.ood_scores['rba'], -f.tanh().sum(0))
    assert out.ood_scores['rba'].shape == (h, w)
    assert ((out.ood_scores['no_object'] > 0) &
            (out.ood_scores['no_object'] < 1)).all()


def test_refusals_name_the_head(mask2former):
    with pytest.raises(UnsupportedScorerError,
                       match=r"'norm' is an embedding scorer.*Mask2FormerHead "
                       r'\(mask classification'):
        OODScoring(mask2former, ['msp', 'norm'])
    with pytest.warns(OODNotice, match="skipping scorer 'n_energy'"):
        scoring = OODScoring(mask2former, ['rba', 'n_energy'], strict=False)
    assert scoring.names == ['rba']
    fcn = zoo_model('fcn')
    with pytest.raises(UnsupportedScorerError,
                       match=r"'rba' needs a mask-classification head.*"
                       r'FCNHead \(a 1x1 linear classifier\)'):
        OODScoring(fcn, ['rba'])


M2F_CONFIG = osp.join(REPO, 'configs', 'synthetic',
                      'mask2former_r18_1xb8-300it_synthetic-street-128x256.py')


def test_ood_test_runs_end_to_end_on_mask2former(tmp_path, synthetic_root):
    env = {'MMSEG_OOD_DATA': synthetic_root}
    work = tmp_path / 'train'
    run_tool('train.py', M2F_CONFIG, '--work-dir', str(work), '--cfg-options',
             *QUICK_OPTIONS, env=env)
    ckpt = (work / 'last_checkpoint').read_text().strip()
    out = tmp_path / 'ood'
    proc = run_tool(
        'ood_test.py', M2F_CONFIG, ckpt, '--work-dir', str(out),
        '--datasets', 'synthetic_ood', '--show-dir', str(out / 'heat'),
        '--show-num', '1', '--export-smiyc', str(out / 'smiyc'),
        '--cfg-options', *QUICK_OPTIONS, env=env)
    res = json.loads((out / 'results.json').read_text())
    assert res['complete'] is True
    scored = {'msp', 'entropy', 'max_logit', 'energy', 'rba', 'no_object',
              'eam'}
    assert set(res['results']['synthetic_ood']) == scored
    for metrics in res['results']['synthetic_ood'].values():
        assert 0 <= metrics['auroc'] <= 1
    assert 0 <= res['id_miou']['test_set'] <= 100
    # the embedding scorers are skipped, named as such, with the head
    for name in ('norm', 'n_max_logit', 'n_energy'):
        assert (f"skipping scorer '{name}': scorer '{name}' is an embedding "
                'scorer') in proc.stdout + proc.stderr  # a log line
    assert 'Mask2FormerHead (mask classification' in proc.stdout
    md = (out / 'results.md').read_text()
    assert '| rba |' in md and '| no_object |' in md
    for kind in ('roc', 'pr'):
        assert (out / 'curves' / f'synthetic_ood_{kind}.png').stat().st_size
    assert len(os.listdir(out / 'heat' / 'synthetic_ood')) == 1
    files = glob.glob(str(out / 'smiyc' / 'anomaly_p' / '*' /
                          'synthetic_ood' / '*.hdf5'))
    assert len(files) == 3 * len(scored)


# EAM and Mask2Anomaly --------------------------------------------------------
MASK_LEVEL = ['eam', 'mask2anomaly', 'mask2anomaly:flip=True']


def plain_f(model, img):
    """mmseg's own class scores f (K, h, w) of one image, no scorers."""
    h, w = img.shape[1:]
    data = dict(inputs=[img], data_samples=[
        SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))])
    return model.test_step(data)[0].seg_logits.data


def test_eam_on_mask2former_from_the_captured_queries(mask2former):
    h, w = 50, 70  # padded to 64 x 96 by the preprocessor
    with torch.no_grad():
        kept, handle = final_queries(mask2former)
        try:
            with OODScoring(mask2former, ['eam']):
                out = mask2former.test_step(batch(h, w))[0]
        finally:
            handle.remove()
    masks = F.interpolate(kept['mask'], size=(64, 96), mode='bilinear',
                          align_corners=False).sigmoid()[0, :, :h, :w]
    confidence = kept['cls'].softmax(-1)[0, :, :-1].max(-1).values
    expected = 1 - torch.einsum('q,qhw->hw', confidence, masks)
    torch.testing.assert_close(out.ood_scores['eam'], expected)


def test_flip_is_the_mean_over_the_image_and_its_flip(mask2former):
    # two images in one batch, padded at the right and bottom (50 x 70 ->
    # 64 x 96): each must be flipped inside its own region
    model = mask2former
    data = batch(50, 70, n=2, seed=3)
    imgs = list(data['inputs'])
    with torch.no_grad():
        with OODScoring(model, MASK_LEVEL):
            out = model.test_step(data)
        with OODScoring(model, ['eam', 'mask2anomaly']):
            single = model.test_step(batch(50, 70, n=2, seed=3))
        for i, img in enumerate(imgs):
            # by hand: mmseg's f of the image and of the flipped image, each
            # run on its own, the second score flipped back
            plain = 1 - plain_f(model, img).max(0).values
            flipped = (1 - plain_f(model, img.flip(-1)).max(0).values).flip(-1)
            assert (plain - flipped).abs().max() > 0.01  # the flip matters
            scores = out[i].ood_scores
            torch.testing.assert_close(scores['mask2anomaly'], plain)
            torch.testing.assert_close(scores['mask2anomaly:flip=True'],
                                       (plain + flipped) / 2)
            # the flipped pass leaves the other scorers and mmseg's outputs
            # as they are
            for name in ('eam', 'mask2anomaly'):
                assert torch.equal(scores[name], single[i].ood_scores[name])
            assert torch.equal(out[i].seg_logits.data,
                               single[i].seg_logits.data)


def test_flip_in_slide_inference():
    # MaskFormer with sliding windows on a padded input (60 x 100 -> 64 x
    # 128): the flipped pass slides over the flipped image
    model = small_maskformer(mode='slide', crop_size=(64, 64),
                             stride=(32, 32))
    with torch.no_grad():
        with OODScoring(model, ['mask2anomaly:flip=True']):
            out = model.test_step(batch(60, 100))[0]
        with OODScoring(model, ['mask2anomaly']):
            plain = model.test_step(batch(60, 100))[0]
            flipped = model.test_step(batch(60, 100, flip=True))[0]
    expected = (plain.ood_scores['mask2anomaly'] +
                flipped.ood_scores['mask2anomaly'].flip(-1)) / 2
    torch.testing.assert_close(out.ood_scores['mask2anomaly:flip=True'],
                               expected)


def test_flip_needs_the_model(mask2former):
    # an exported graph runs `inference` alone: no second pass there
    scoring = OODScoring(mask2former, ['rba', 'mask2anomaly:flip=True'])
    scoring.attach()
    try:
        with pytest.raises(UnsupportedScorerError,
                           match=r"'mask2anomaly:flip=True' average over a "
                           'horizontal flip'):
            with scoring.scores_appended():
                pass
    finally:
        scoring.detach()
    assert 'inference' not in vars(mask2former)  # detach unwrapped it
    fcn = zoo_model('fcn')
    with pytest.raises(UnsupportedScorerError,
                       match=r"'mask2anomaly' needs a mask-classification "
                       r'head.*FCNHead'):
        OODScoring(fcn, ['mask2anomaly:flip=True'])


@pytest.fixture(scope='module')
def m2f_checkpoint(tmp_path_factory, synthetic_root):
    """Two Runner iterations of the synthetic Mask2Former; its checkpoint."""
    work = tmp_path_factory.mktemp('m2f_train')
    run_tool('train.py', M2F_CONFIG, '--work-dir', str(work), '--cfg-options',
             *QUICK_OPTIONS, env={'MMSEG_OOD_DATA': synthetic_root})
    return (work / 'last_checkpoint').read_text().strip()


def test_ood_test_runs_the_mask_level_scorers(tmp_path, synthetic_root,
                                              m2f_checkpoint):
    out = tmp_path / 'ood'
    # the synthetic street's stuff classes: building, vegetation, sky
    names = MASK_LEVEL + ['mask2anomaly:stuff_classes=[2,3,4],flip=True']
    run_tool('ood_test.py', M2F_CONFIG, m2f_checkpoint, '--work-dir',
             str(out), '--datasets', 'synthetic_ood', '--no-id-eval',
             '--scorers', *names, '--cfg-options', *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root})
    res = json.loads((out / 'results.json').read_text())
    assert res['complete'] is True
    results = res['results']['synthetic_ood']
    assert set(results) == set(names)
    for metrics in results.values():
        assert 0 <= metrics['auroc'] <= 1
    md = (out / 'results.md').read_text()
    for name in names:
        assert f'| {name} |' in md


def test_score_image_flips_a_trained_checkpoint(synthetic_root,
                                                m2f_checkpoint, monkeypatch):
    import cv2
    import numpy as np

    from mmseg.apis import init_model
    from mmseg_ood.apis import score_image
    from mmseg_ood.utils import safe_checkpoint_loading

    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    with safe_checkpoint_loading():
        model = init_model(M2F_CONFIG, m2f_checkpoint, device='cpu')
    img = cv2.imread(osp.join(synthetic_root, 'street', 'ood', 'images',
                              '0000.png'))
    names = ['mask2anomaly', 'mask2anomaly:flip=True',
             'mask2anomaly:stuff_classes=[2,3,4],flip=True']
    maps = score_image(model, img, names)
    # by hand: the one-pass scores of the image and of its mirror image
    one_pass = ['mask2anomaly', 'mask2anomaly:stuff_classes=[2,3,4]']
    plain = score_image(model, img, one_pass)
    mirror = score_image(model, np.ascontiguousarray(img[:, ::-1]), one_pass)
    for flipped, single in zip(names[1:], one_pass):
        expected = (plain[single] + mirror[single][:, ::-1]) / 2
        assert maps[flipped].shape == img.shape[:2]
        np.testing.assert_allclose(maps[flipped], expected, atol=1e-5)
    np.testing.assert_array_equal(maps['mask2anomaly'],
                                  plain['mask2anomaly'])


def test_odin_and_a_flip_scorer_run_their_own_passes(mask2former):
    """ODIN's gradient and perturbed passes beside mask2anomaly's flipped
    pass: each scorer gets its own pass's map. ODIN at eps = 0, T = 1 is
    MSP; mask2anomaly with the flip equals it alone; the plain scorers
    equal a run without the extra passes."""
    data = batch(64, 96)
    flip = 'mask2anomaly:flip=True'
    odin = 'odin:epsilon=0,temperature=1'
    with torch.no_grad(), OODScoring(mask2former, ['msp', flip, odin,
                                                   'rba']):
        both = mask2former.test_step(data)[0].ood_scores
    with torch.no_grad(), OODScoring(mask2former, [flip]):
        flip_alone = mask2former.test_step(batch(64, 96))[0].ood_scores
    with torch.no_grad(), OODScoring(mask2former, ['msp', 'rba']):
        plain = mask2former.test_step(batch(64, 96))[0].ood_scores
    torch.testing.assert_close(both[odin], plain['msp'])
    torch.testing.assert_close(both[flip], flip_alone[flip])
    for name in ('msp', 'rba'):
        torch.testing.assert_close(both[name], plain[name])
