"""Mask2Former trained with outlier supervision: where outlier pixels
(label 254) go, RbA's outlier loss, UNO's negative class, and fine-tuning
only the class and mask MLPs."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from mmseg.models.decode_heads import Mask2FormerHead
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, SampleList
from torch import Tensor

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX, PROXY_OOD_INDEX
from ...utils.arguments import accepted_arguments, check_arguments


def _base_arguments() -> list:
    """The keywords mmseg's ``Mask2FormerHead`` accepts: the named
    parameters along its constructors' chain (each passes ``**kwargs`` on to
    the next) up to the first without ``**kwargs``."""
    import inspect
    names = []
    for klass in Mask2FormerHead.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        accepted = accepted_arguments(init)
        if accepted is not None:
            return list(dict.fromkeys(names + accepted))
        names += [p.name for p in inspect.signature(init).parameters.values()
                  if p.name != 'self' and p.kind in (
                      p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names


@MODELS.register_module()
class OutlierMask2FormerHead(Mask2FormerHead):
    """mmseg's ``Mask2FormerHead`` that can learn from outlier pixels.

    mmseg's ``Mask2FormerHead`` turns every label other than
    ``ignore_index`` (255) into a class id, so an outlier pixel labelled
    254 (:data:`~mmseg_ood.labels.PROXY_OOD_INDEX`: the COCO and synthetic
    proxies, a user's own data) would become class 254 of a K-class head -
    an index error in its classification loss. This head decides where such
    pixels go before the mask-classification losses see them:

    - by default (and for RbA), they are void for the mask-classification
      losses: no ground-truth mask contains them, as the RbA authors' data
      mapper removes them from the instance classes; ``outlier_loss``
      (e.g. :class:`~mmseg_ood.models.losses.RbAOutlierLoss`) then reads
      them as a pixel mask of the labels, on the output of every decoder
      layer as the RbA authors' criterion does (``loss_rba_outlier`` for the
      last layer, ``d<i>.loss_rba_outlier`` for the others);
    - with ``negative_class=True`` (UNO), they are one more ground-truth
      mask of class K, the *negative* class: the head has K + 2 class
      outputs (K known, the negative class, "no object"), and the matched
      query learns to claim outliers with the negative class through the
      usual classification, mask and dice losses. Prediction drops the
      negative class: ``seg_logits`` has the K known classes, as the
      dataset; the ``uno`` scorer reads the negative class from the query
      logits.

    ``trainable`` fine-tunes only some of the head's parameters (RbA's
    ``FREEZE_PIXEL_DECODER`` and ``FREEZE_TRANSFORMER_DECODER_EXCEPT_MLP``:
    ``('cls_embed', 'mask_embed')``); freeze the backbone in the config
    with ``frozen_stages`` and ``norm_eval`` (``FREEZE_BACKBONE``).

    Args:
        num_classes: K, the number of known classes (the dataset's).
        outlier_loss: A loss config reading outlier pixels, e.g.
            ``dict(type='RbAOutlierLoss')``, or ``None``. Its ``forward``
            takes ``(cls_logits, mask_logits, target, ignore_index)``.
        negative_class: UNO: learn outliers as class K of K + 1 classes
            plus "no object".
        ood_index: Label of outlier pixels; must not be a class index or
            ``ignore_index``.
        trainable: Names of the head's direct submodules that keep
            ``requires_grad`` (e.g. ``('cls_embed', 'mask_embed')``); the
            head's other parameters are frozen. ``None``: all train.
        ignore_index: Label of void pixels (255).
        **kwargs: As mmseg's ``Mask2FormerHead`` (``feat_channels``,
            ``loss_cls`` - whose ``class_weight`` has K + 2 entries with
            ``negative_class`` -, ``pixel_decoder``, ...).

    References:
        RbA: Nayal et al., ICCV 2023, sec. 3.3; ``NazirNayal8/RbA``,
        ``mask2former/data/dataset_mappers/
        mask_former_semantic_coco_mix_dataset_mapper.py`` (outliers removed
        from the instance classes, kept as an outlier mask) and
        ``train_net.py`` (the freezing options). UNO: Delić, Grcić &
        Šegvić, "Outlier detection by ensembling uncertainty with negative
        objectness", BMVC 2024, sec. 3-4 (K + 2-way mask-level recognition,
        negative instances pasted into inlier images).
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 outlier_loss: Optional[dict] = None,
                 negative_class: bool = False,
                 ood_index: int = PROXY_OOD_INDEX,
                 trainable: Optional[Sequence[str]] = None,
                 ignore_index: int = IGNORE_INDEX,
                 **kwargs):
        # mmseg's head passes **kwargs on to mmdet's: check them against
        # mmdet's signature so that a misspelt key is not swallowed
        check_arguments(type(self).__name__, kwargs, dict.fromkeys([
            'num_classes', 'outlier_loss', 'negative_class', 'ood_index',
            'trainable', 'ignore_index'
        ] + _base_arguments()))
        if isinstance(num_classes, bool) or not isinstance(
                num_classes, int) or num_classes < 1:
            raise InvalidValueError(
                f'`num_classes` must be a positive int, got {num_classes!r}')
        if not isinstance(negative_class, bool):
            raise InvalidValueError('`negative_class` must be True or False, '
                                    f'got {negative_class!r}')
        if ood_index == ignore_index or 0 <= ood_index < num_classes + int(
                negative_class):
            raise InvalidValueError(
                f'`ood_index`={ood_index} must differ from ignore_index '
                f'({ignore_index}) and from the class indices 0..'
                f'{num_classes + int(negative_class) - 1}')
        super().__init__(
            num_classes=num_classes + int(negative_class),
            ignore_index=ignore_index,
            **kwargs)
        self.num_known_classes = num_classes
        self.num_negative_classes = int(negative_class)
        self.out_channels = num_classes
        self.ood_index = int(ood_index)
        self.outlier_loss = MODELS.build(outlier_loss) \
            if outlier_loss is not None else None
        self.trainable = None if trainable is None else tuple(trainable)
        if self.trainable is not None:
            self._freeze_except(self.trainable)

    def _freeze_except(self, trainable: Tuple[str, ...]) -> None:
        """``requires_grad=False`` on every parameter of the head outside
        the submodules named in ``trainable``."""
        children = dict(self.named_children())
        unknown = [t for t in trainable if t not in children]
        if unknown or not trainable:
            raise InvalidValueError(
                f'`trainable` names submodules of the head, got '
                f'{list(trainable)}; it has {sorted(children)}')
        for name, param in self.named_parameters():
            if name.split('.')[0] not in trainable:
                param.requires_grad_(False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Load a K + 1-way classifier into a K + 2-way one (UNO fine-tuned
        from an ordinary Mask2Former): the known rows and "no object" are
        copied, the negative class keeps its fresh initialization."""
        if self.num_negative_classes:
            k = self.num_known_classes
            for name in ('cls_embed.weight', 'cls_embed.bias'):
                old = state_dict.get(prefix + name)
                new = self.state_dict()[name]
                if old is not None and old.shape[0] == k + 1 and \
                        new.shape[0] == k + 2:
                    merged = new.clone()
                    merged[:k] = old[:k]
                    merged[-1] = old[-1]
                    state_dict[prefix + name] = merged
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _outlier_routed(self, batch_data_samples: SampleList) -> Tuple[
            SampleList, Tensor]:
        """Samples whose labels the mask-classification losses can take,
        and the original labels ``(N, H, W)`` for the outlier loss.

        Outlier pixels become class K (``negative_class``) or void; a label
        that is neither a class, the outlier index nor void is an error
        naming it."""
        labels = []
        routed = []
        num_classes = self.num_known_classes
        for sample in batch_data_samples:
            gt = sample.gt_sem_seg.data
            values = torch.unique(gt)
            bad = [int(v) for v in values
                   if not (0 <= v < num_classes or v in (
                       self.ood_index, self.ignore_index))]
            if bad:
                raise InvalidValueError(
                    f'labels {bad} of {sample.metainfo.get("seg_map_path")}'
                    f' are neither one of the {num_classes} classes, the '
                    f'outlier label {self.ood_index} nor void '
                    f'{self.ignore_index}')
            labels.append(gt.squeeze(0))
            new = sample.clone()
            target = num_classes if self.num_negative_classes else \
                self.ignore_index
            new.gt_sem_seg.data = torch.where(
                gt == self.ood_index, torch.full_like(gt, target), gt)
            routed.append(new)
        return routed, torch.stack(labels)

    def loss(self, x: Tuple[Tensor], batch_data_samples: SampleList,
             train_cfg: ConfigType) -> dict:
        """mmseg's Mask2Former losses on the routed labels, plus
        ``outlier_loss`` on every decoder layer.

        Args:
            x: Multi-level features of the backbone / neck.
            batch_data_samples: Samples with ``gt_sem_seg``.
            train_cfg: The training config.

        Returns:
            dict: Loss name -> value.
        """
        routed, labels = self._outlier_routed(batch_data_samples)
        batch_gt_instances, batch_img_metas = \
            self._seg_data_to_instance_data(routed)
        all_cls_scores, all_mask_preds = self(x, routed)
        losses = self.loss_by_feat(all_cls_scores, all_mask_preds,
                                   batch_gt_instances, batch_img_metas)
        if self.outlier_loss is not None:
            name = self.outlier_loss.loss_name
            last = len(all_cls_scores) - 1
            for i, (cls, mask) in enumerate(zip(all_cls_scores,
                                                all_mask_preds)):
                key = name if i == last else f'd{i}.{name}'
                losses[key] = self.outlier_loss(
                    cls, mask, labels, ignore_index=self.ignore_index)
        return losses

    def predict(self, x: Tuple[Tensor], batch_img_metas: List[dict],
                test_cfg: ConfigType) -> Tensor:
        """mmseg's semantic inference over the K known classes: the
        negative class (if any) is dropped after the mixing.

        Args:
            x: Multi-level features.
            batch_img_metas: The images' metainfo.
            test_cfg: The test config.

        Returns:
            Tensor: ``seg_logits`` ``(N, K, H, W)``.
        """
        seg_logits = super().predict(x, batch_img_metas, test_cfg)
        return seg_logits[:, :self.num_known_classes]
