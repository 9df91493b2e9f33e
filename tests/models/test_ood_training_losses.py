"""UOI / IoU and entropy-maximization losses: hand-worked values, the
papers' gradients, ignore / outlier handling, bad labels."""
import math

import pytest
import torch

from mmseg_ood.models import (EntropyMaximizationLoss, IoULoss, UOILoss,
                              expected_intersection_union)

LOG3 = math.log(3.0)


def _hand_case():
    """Two pixels, two classes: p^ = (.75, .25) labelled 0 and (.5, .5)
    labelled 1."""
    pred = torch.tensor([[[[LOG3, 0.0]], [[0.0, 0.0]]]], dtype=torch.float64)
    target = torch.tensor([[[0, 1]]])
    return pred, target


def test_expected_intersection_and_union_hand_worked():
    pred, target = _hand_case()
    inter, union, mass = expected_intersection_union(pred, target)
    # E[I_0] = .75; E[U_0] = (.75 + 1 - .75) + (.5 + 0 - 0) = 1.5
    # E[I_1] = .5;  E[U_1] = (.25 + 0 - 0) + (.5 + 1 - .5) = 1.25
    assert torch.allclose(inter, torch.tensor([0.75, 0.5],
                                              dtype=torch.float64))
    assert torch.allclose(union, torch.tensor([1.5, 1.25],
                                              dtype=torch.float64))
    assert torch.equal(mass, torch.tensor([1.0, 1.0], dtype=torch.float64))


def test_uoi_and_iou_loss_values_hand_worked():
    pred, target = _hand_case()
    # UOI = (1.5 / .75 + 1.25 / .5) / 2 = (2 + 2.5) / 2
    assert UOILoss()(pred, target).item() == pytest.approx(2.25)
    # IoU loss = 1 - (.75 / 1.5 + .5 / 1.25) / 2 = 1 - .45
    assert IoULoss()(pred, target).item() == pytest.approx(0.55)
    assert UOILoss(loss_weight=0.7)(pred, target).item() == pytest.approx(
        0.7 * 2.25)


def test_uoi_of_a_confident_correct_prediction_is_one():
    target = torch.tensor([[[0, 1], [2, 2]]])
    pred = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).double()
    assert UOILoss()(pred * 60, target).item() == pytest.approx(1.0)
    assert IoULoss()(pred * 60, target).item() == pytest.approx(0.0,
                                                                abs=1e-12)


def _eq67(pred, target, num_classes):
    """Supplement eq. 67, the UOI gradient w.r.t. the logits z_ik."""
    p_hat = pred.softmax(1).movedim(1, -1).reshape(-1, num_classes)
    p = torch.nn.functional.one_hot(target.reshape(-1),
                                    num_classes).to(p_hat)
    inter = (p_hat * p).sum(0)
    total = (p_hat + p).sum(0)
    coef = (inter - p * total) / inter**2  # (N, K') per pixel i, class k'
    a = coef * p_hat  # times p^_ik'
    # sum_k' a_ik' ([k = k'] - p^_ik) = a_ik - p^_ik sum_k' a_ik'
    grad = a - p_hat * a.sum(1, keepdim=True)
    return grad.reshape(*target.shape, num_classes).movedim(-1, 1)


def test_uoi_gradient_equals_supplement_eq_67():
    torch.manual_seed(0)
    k = 4
    pred = torch.randn(2, k, 3, 5, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, k, (2, 3, 5))
    target[0, 0, :k] = torch.arange(k)  # every class present
    UOILoss()(pred, target).backward()
    # the loss is the mean over the K' = k present classes
    assert torch.allclose(pred.grad * k, _eq67(pred.detach(), target, k),
                          rtol=1e-10, atol=1e-12)


def test_iou_gradient_equals_supplement_eq_59():
    torch.manual_seed(1)
    k = 3
    pred = torch.randn(1, k, 4, 4, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, k, (1, 4, 4))
    target[0, 0, :k] = torch.arange(k)
    IoULoss()(pred, target).backward()
    z = pred.detach()
    p_hat = z.softmax(1).movedim(1, -1).reshape(-1, k)
    p = torch.nn.functional.one_hot(target.reshape(-1), k).double()
    inter = (p_hat * p).sum(0)
    union = (p_hat + p - p_hat * p).sum(0)
    coef = (p * (p_hat + p).sum(0) - inter) / union**2
    a = coef * p_hat
    eq59 = (a - p_hat * a.sum(1, keepdim=True)).reshape(1, 4, 4, k)
    # loss = 1 - mean IoU: gradient is -eq. 59 / K'
    assert torch.allclose(pred.grad * -k, eq59.movedim(-1, 1), rtol=1e-10,
                          atol=1e-12)


def test_ignored_pixels_do_not_change_the_loss():
    pred, target = _hand_case()
    extra = torch.randn(1, 2, 1, 3, dtype=torch.float64)
    pred2 = torch.cat([pred, extra[..., :2]], dim=2)
    target2 = torch.cat([target, torch.full((1, 1, 2), 255)], dim=1)
    assert UOILoss()(pred2, target2).item() == pytest.approx(2.25)
    assert UOILoss()(pred2, target2.clone().fill_(255)).item() == 0.0
    # a custom ignore index is honoured
    target3 = target2.clone()
    target3[target3 == 255] = 7
    assert UOILoss()(pred2, target3, ignore_index=7).item() == \
        pytest.approx(2.25)


def test_soft_labels_equal_hard_one_hot_labels():
    torch.manual_seed(2)
    pred = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 4, 4))
    soft = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).double()
    for loss in (UOILoss(), IoULoss()):
        assert loss(pred, soft).item() == pytest.approx(
            loss(pred, target).item())
    # a soft label of all zeros is void
    soft[:, :, 0, 0] = 0
    hard = target.clone()
    hard[:, 0, 0] = 255
    assert UOILoss()(pred, soft).item() == pytest.approx(
        UOILoss()(pred, hard).item())


def test_absent_classes_are_left_out_of_the_mean():
    pred, target = _hand_case()
    pred3 = torch.cat([pred, torch.zeros(1, 1, 1, 2, dtype=torch.float64)],
                      dim=1)  # class 2 exists in the model, not in labels
    inter, union, _ = expected_intersection_union(pred3, target)
    expected = (union[0] / inter[0] + union[1] / inter[1]) / 2
    value = UOILoss()(pred3, target)
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(expected.item())


def test_bad_labels_and_shapes_are_named():
    pred = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match='label 7'):
        UOILoss()(pred, torch.tensor([[[0, 1], [7, 255]]]))
    with pytest.raises(ValueError, match='does not match'):
        UOILoss()(pred, torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match='soft labels'):
        UOILoss()(pred, -torch.ones(1, 3, 2, 2))


def test_entropy_maximization_hand_worked():
    # pixel 0: ID label 0 with p = (.75, .25); pixel 1: outlier (254) with
    # p = (.5, .5); pixel 2: void (255)
    pred = torch.tensor([[[[LOG3, 0.0, 5.0]], [[0.0, 0.0, -5.0]]]],
                        dtype=torch.float64)
    target = torch.tensor([[[0, 254, 255]]])
    loss = EntropyMaximizationLoss(ood_weight=0.9)(pred, target)
    l_in = -math.log(0.75)
    l_out = -(math.log(0.5) + math.log(0.5)) / 2
    assert loss.item() == pytest.approx((0.1 * l_in + 0.9 * l_out) / 2)
    # lambda = 0 is plain cross entropy over the ID pixels
    ce = EntropyMaximizationLoss(ood_weight=0.0)(pred, target)
    assert ce.item() == pytest.approx(l_in / 2)


def test_outlier_term_is_minimal_at_the_uniform_distribution():
    """l_out >= log q with equality iff uniform (entropy-max eq. 5)."""
    q = 5
    loss = EntropyMaximizationLoss(ood_weight=1.0)
    target = torch.full((1, 1, 1), 254)
    uniform = torch.zeros(1, q, 1, 1, dtype=torch.float64)
    assert loss(uniform, target).item() == pytest.approx(math.log(q))
    torch.manual_seed(3)
    for _ in range(20):
        other = torch.randn(1, q, 1, 1, dtype=torch.float64)
        assert loss(other, target).item() > math.log(q)
    z = torch.randn(1, q, 1, 1, dtype=torch.float64, requires_grad=True)
    loss(z, target).backward()
    # d l_out / d z_j = p_j - 1/q
    assert torch.allclose(z.grad, z.detach().softmax(1) - 1.0 / q)


def test_entropy_maximization_bad_input_is_named():
    pred = torch.zeros(1, 3, 1, 2)
    with pytest.raises(ValueError, match='label 9'):
        EntropyMaximizationLoss()(pred, torch.tensor([[[0, 9]]]))
    with pytest.raises(ValueError, match='ood_weight'):
        EntropyMaximizationLoss(ood_weight=1.5)
    with pytest.raises(ValueError, match='ood_index'):
        EntropyMaximizationLoss(ood_index=1)(pred, torch.tensor([[[0, 1]]]))
    all_void = EntropyMaximizationLoss()(pred, torch.full((1, 1, 2), 255))
    assert all_void.item() == 0.0
