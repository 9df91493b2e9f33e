"""Mixed precision without a GPU: the OOD training losses and heads (UOI,
entropy maximization, IBE, SCrIBE) under CPU autocast (bfloat16) and on
half-precision logits, as an autocast forward pass gives them."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg_ood.models import EntropyMaximizationLoss, UOILoss

HALF = [torch.bfloat16, torch.float16]


def batch(seed=0):
    """Logits of 6 classes spanning about -90..90 and labels with void
    (255) and, for entropy maximization, outlier (254) pixels."""
    g = torch.Generator().manual_seed(seed)
    pred = 30 * torch.randn(2, 6, 16, 16, generator=g)
    target = torch.randint(0, 6, (2, 16, 16), generator=g)
    target[1, :2] = 255
    with_outliers = target.clone()
    with_outliers[0, :4] = 254
    return pred, target, with_outliers


def losses():
    pred, target, outliers = batch()
    return [(UOILoss(), pred, target),
            (EntropyMaximizationLoss(), pred, outliers)]


@pytest.mark.parametrize('dtype', HALF, ids=['bf16', 'fp16'])
@pytest.mark.parametrize('k', [0, 1], ids=['uoi', 'entropy_max'])
def test_loss_of_half_precision_logits(k, dtype):
    """Finite, float32 (as losses are under autocast) and equal to the
    loss of the same rounded logits in float32; finite gradients."""
    loss, pred, target = losses()[k]
    half = pred.to(dtype).requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loss(half, target)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    ref = loss(half.detach().float(), target)
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)
    assert out.item() == pytest.approx(loss(pred, target).item(), rel=2e-2)
    out.backward()
    assert half.grad.dtype == dtype and torch.isfinite(half.grad).all()


def test_uoi_of_a_missed_fragment_does_not_overflow_float16():
    """A class present as one pixel the model misses: E[U]/E[I] is about
    5e5, past float16's largest value (65504). The loss stays float32."""
    pred = torch.zeros(1, 3, 64, 64)
    pred[:, 0] = 40.0
    target = torch.zeros(1, 64, 64, dtype=torch.long)
    target[0, 0, 0] = 1
    ref = UOILoss()(pred, target)
    out = UOILoss()(pred.half(), target)
    assert ref.item() > 65504
    assert torch.isfinite(out) and out.dtype == torch.float32
    assert out.item() == pytest.approx(ref.item(), rel=1e-3)


def _samples(target):
    out = []
    for t in target:
        s = SegDataSample(metainfo=dict(img_shape=tuple(t.shape)))
        s.gt_sem_seg = PixelData(data=t[None])
        out.append(s)
    return out


@pytest.mark.parametrize('kind', ['IBEHead', 'SCrIBEHead'])
def test_implicit_background_heads_train_under_autocast(kind):
    """The head's classifier runs in bfloat16 under autocast; the implicit
    background (-logsumexp, taken in float32) and the cross entropy stay
    finite, the loss near the float32 one, every gradient finite."""
    init_default_scope('mmseg')
    torch.manual_seed(0)
    head = MODELS.build(dict(
        type=kind, background_index=0,
        head=dict(type='FCNHead', in_channels=8, channels=8, num_convs=0,
                  concat_input=False, dropout_ratio=0.0, num_classes=6)))
    feats = [20 * torch.randn(2, 8, 16, 16)]
    _, target, _ = batch()
    samples = _samples(target)
    ref = head.loss_by_feat(head.forward(feats), samples)['loss_ce']
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = head.forward(feats)
        out = head.loss_by_feat(logits, samples)['loss_ce']
    assert logits.dtype == torch.bfloat16
    assert torch.isfinite(logits).all() and torch.isfinite(out)
    assert out.item() == pytest.approx(ref.item(), rel=2e-2)
    out.backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
