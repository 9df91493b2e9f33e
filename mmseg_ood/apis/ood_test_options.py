"""What an :func:`~mmseg_ood.apis.ood_test` run is asked to do.

:class:`OODTestOptions` holds the evaluation options (datasets, scorers,
tuning, exports, metrics); ``ood_test`` takes one, and keywords naming its
fields over it. ``tools/ood_test.py`` builds one from its flags.
"""
from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from ..engine.hooks.smiyc_export_hook import TRANSFORMS as EXPORT_TRANSFORMS
from ..engine.tracking import VIS_BACKENDS
from ..engine.tuning import (TuneSpec, restrict_grid, tunable_types,
                             tune_values, tuning_scorers)
from ..errors import InvalidTypeError, InvalidValueError, MissingInputError
from ..evaluation.accumulators.bootstrap import check_bootstrap
from ..evaluation.metrics.ood_metric import threshold_rule
from ..scorers import build_scorer, parse_scorer_spec
from .sml import SML_SPLITS

__all__ = ['OODTestOptions', 'DEFAULT_SCORERS', 'OPEN_SET_THRESHOLDS',
           'parse_component_threshold', 'reference_fitted_scorers']

#: Scored when ``scorers`` is not given (``sml`` needs fitted statistics,
#: ``maskomaly`` a query selection fitted on a labelled reference set
#: (``tune_on``), and ``gen`` is beyond the seed methods: they run when
#: asked for by name;
#: ``sml``'s boundary suppression and smoothing through a config dict, e.g.
#: in ``OODScoringHook`` or ``score_image``). Each model scores those its
#: head supports and skips the others with a warning: the embedding
#: scorers (``norm``, ``n_max_logit``, ``n_energy``) need a final 1x1
#: linear classifier,
#: ``background`` an IBE / SCrIBE head, ``rba`` and ``no_object`` a
#: mask-classification head (MaskFormer / Mask2Former).
DEFAULT_SCORERS = ('msp', 'entropy', 'max_logit', 'energy', 'norm',
                   'n_max_logit', 'n_energy', 'background', 'rba',
                   'no_object', 'eam')

#: Entropy thresholds of ``open_set_iou`` (the normalized entropy is in
#: [0, 1]; entropy-maximization Fig. 5 spans that range).
OPEN_SET_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 21))


def reference_fitted_scorers(scorers) -> list:
    """The scorers whose selection a run fits on the labelled reference
    set ``tune_on``: ``maskomaly`` without ``queries_file`` or ``queries``.

    Args:
        scorers: Scorer specs (``'NAME[:key=value,...]'`` or config
            dicts), or ``None`` (the defaults, none of which is fitted on
            a reference set). Specs that do not parse are left out (the
            scorer check names them).

    Returns:
        list: The specs, in order.
    """
    found = []
    for spec in scorers or ():
        try:
            cfg = parse_scorer_spec(spec) if isinstance(spec, str) else spec
        except ValueError:
            continue
        if isinstance(cfg, dict) and cfg.get('type') == 'maskomaly' and \
                cfg.get('queries_file') is None and \
                cfg.get('queries') is None:
            found.append(spec)
    return found


def parse_component_threshold(text) -> Tuple[str, Optional[object]]:
    """``--component-threshold`` -> ``(rule, argument)``.

    ``'best-f1'`` (or ``'best_f1'``): ``('best-f1', None)``, each dataset's
    own best pixel-F1 threshold (the SMIYC benchmark's choice, an oracle;
    exact, ``score >= t``); ``'smiyc'``: ``('smiyc', None)``, the same
    oracle as the benchmark's code computes it (its binned pixel curve,
    ``score > t``, its tau grid: its numbers); a number: ``('fixed',
    value)``; ``'from:<dataset>'``: ``('from', name)``, the best-F1
    threshold of another dataset; ``'tpr:<rate>'``: ``('tpr', rate)``, the
    threshold at which each dataset's pixel TPR first reaches ``rate``.

    Args:
        text: The option's value: a string in one of the forms above, or
            a number (the fixed score threshold).

    Raises:
        ValueError: anything else (naming the accepted forms).
    """
    forms = ("'best-f1', 'smiyc', a number, 'from:<dataset>' or "
             "'tpr:<rate>' (rate in (0, 1])")
    if not isinstance(text, (str, int, float)) or isinstance(text, bool):
        raise InvalidValueError(f'`component_threshold` must be {forms}, got '
                                f'{text!r}')
    if text in ('best-f1', 'best_f1'):
        return 'best-f1', None
    if text == 'smiyc':
        return 'smiyc', None
    if isinstance(text, str) and text.startswith('from:'):
        if not text[5:]:
            raise InvalidValueError("`component_threshold` 'from:' needs a "
                                    "dataset, e.g. 'from:road_anomaly21'")
        return 'from', text[5:]
    if isinstance(text, str) and text.startswith('tpr:'):
        try:
            return 'tpr', threshold_rule(text)[1]
        except ValueError:
            raise InvalidValueError(
                f"`component_threshold` 'tpr:<rate>' needs a "
                f'rate in (0, 1], got {text!r}') from None
    try:
        value = float(text)
    except ValueError:
        raise InvalidValueError(f'`component_threshold` must be {forms}, got '
                                f'{text!r}') from None
    if not np.isfinite(value):
        raise InvalidValueError(
            f'`component_threshold` must be finite, got {text!r}')
    return 'fixed', value


@dataclass(frozen=True)
class OODTestOptions:
    """The evaluation options of :func:`~mmseg_ood.apis.ood_test`.

    Every field has the default of ``tools/ood_test.py``'s flag; change
    some with :func:`dataclasses.replace`, or pass them to ``ood_test`` as
    keywords. :meth:`validate` checks them (``ood_test`` does before
    anything runs).

    Args:
        datasets: Preset names (``configs/_base_/datasets/ood/``, shipped
            with the package) or preset files. A whole-image preset
            (``whole_image = True``: textures, noise) gets the model's
            background IoU instead (IBE Table 2,
            :func:`~mmseg_ood.engine.background_iou_pass.background_iou_pass`):
            ``results.json["background_iou"][<dataset>]``, a section of
            ``results.md``; "not applicable" for a model without a
            background class.
        scorers: Scorer names; ``None`` = every default scorer the model
            supports (others skipped with a warning). Named scorers that the
            model cannot support are an error. ``'NAME:key=value,...'``
            sets a scorer's parameters (``'n_energy:eta=1.5'``, see
            :func:`~mmseg_ood.scorers.parse_scorer_spec`), reported under
            that text.
        tune: Any of ``eta``, ``delta``, ``temperature``: grid-search them
            on ``tune_on`` (one forward pass per image for the whole grid),
            maximizing AP; the best values are then used on every dataset.
            Each over the default grid (:data:`~mmseg_ood.engine.tuning.
            TUNE_GRID`) or over values of its own: ``'temperature=0.01,
            0.1,1'`` or a mapping ``{'temperature': (0.01, 0.1, 1)}`` (see
            :func:`~mmseg_ood.engine.tuning.tune_values`). The grid goes to
            ``results.json["tuning"]`` (``values``: each parameter's), AP
            against each parameter to ``tuning/ap_vs_<param>.png``.
        tune_on: Dataset to tune on (default: the first of ``datasets``).
            Also the labelled reference set on which ``maskomaly`` (without
            a ``queries_file``) selects its queries, before the evaluation
            (see :mod:`mmseg_ood.engine.query_selection`); it must then
            not be one of ``datasets``, and it is needed even without
            ``tune``. The selection goes to
            ``<work_dir>/maskomaly_queries_<tune_on>.json`` (reused while
            the checkpoint and the set are the same) and to
            ``results.json["maskomaly"]``.
        show_dir / show_num: Heatmaps of the first ``show_num`` images.
        export_smiyc: Directory for the SMIYC submission files
            (``anomaly_p/<method>/<dataset>/<frame>.hdf5``, float16), of
            every frame of each dataset: where some have no label file (a
            benchmark's test frames), one more pass over all frames scores
            and exports them (its transform fitted on all their pixels);
            the metrics cover the labelled ones.
        export_transform: ``'rank'`` (default): each scorer's scores go
            through a monotone transform into [0, 1], fitted on the
            dataset's pixels and recorded in
            ``anomaly_p/<method>/<dataset>.score_transform.json``, so that
            metrics computed from the files equal the tool's; ``'none'``:
            the raw scores cast to float16 (rankings are lost where float16
            is coarse). See :class:`~mmseg_ood.engine.SMIYCExportHook`.
        component_threshold: Threshold of the component metrics (see
            :func:`parse_component_threshold`): ``'best-f1'`` (default,
            SMIYC parity: each dataset's own best pixel-F1 threshold, an
            oracle), a number, ``'from:<dataset>'`` (the best-F1 threshold
            of another dataset, evaluated first) or ``'tpr:<rate>'``.
            ``results.json`` records the rule and every threshold used.
        per_image: Also report AUROC / AP / FPR95 per image, averaged over
            the images with both ID and OOD pixels (columns labelled "per
            image"; the pooled ones "pooled"); ``per_image.csv`` lists each
            image.
        bootstrap: ``None``, or ``dict(samples=R, seed=0, level=0.95,
            bins=1024)``: percentile bootstrap intervals of each scorer's
            pooled AUROC / AP / FPR95 on each dataset, images resampled
            with replacement (``auroc_ci``, ``ap_ci``, ``fpr95_ci`` in
            ``results.json``, brackets in the tables; the settings, the
            number of images and the binning error once, under
            ``bootstrap``). See
            :mod:`mmseg_ood.evaluation.accumulators.bootstrap`.
        tta: Test-time augmentation (scores merged by ``OODSegTTAModel``).
        id_eval: Also report the mIoU of the config's own test set.
        open_set_iou: In that same pass, also the mIoU with an extra OOD
            class for pixels whose ``entropy`` is at least ``t``, for
            ``t`` in :data:`OPEN_SET_THRESHOLDS` (entropy-maximization sec.
            6.3, Fig. 5): ``results.json["open_set_iou"]`` and
            ``curves/open_set_miou.png``. Needs ``id_eval``.
        sml_stats: Statistics file of the ``sml`` scorer; without it they
            are fitted on ``sml_fit_on`` and cached in ``work_dir``.
        sml_fit_on: The older name of ``fit_on`` (SML alone had a fit).
        fit_on: ``'train'`` or ``'val'``: the config's ID split every
            scorer with ``requires_fit`` (``sml``, ``react``, ``dice``,
            ``vim``, ``mahalanobis``, ``rmd``, ``knn``) is fitted on, in one
            pass; the statistics are cached in ``work_dir`` and reused (see
            :mod:`mmseg_ood.apis.fit_on_id`). Default: ``sml_fit_on``
            (``'train'``).
        vis_backends: mmengine visualizer backends the results are also
            sent to, by name: ``'tensorboard'``, ``'mlflow'`` (the
            ``[tracking]`` extra) or ``'wandb'`` (see
            :mod:`mmseg_ood.engine.tracking`); each adds mmengine's backend
            (``TensorboardVisBackend``...) to the config's visualizer, and
            the scalars of ``results.json`` and the figures go through it.
        meta_classifier: A meta-classifier file (``tools/meta_classify.py
            --save``): its scorer's maps are also reported with the
            segments it rejects removed (``<scorer>+meta@<t>``, pixel and
            component metrics), and the segment-wise detection errors
            without and with it go to ``results.json`` (``segments``) and
            ``results.md``.
    """
    datasets: Sequence[str] = ('synthetic_ood', )
    scorers: Optional[Sequence[str]] = None
    tune: TuneSpec = ()
    tune_on: Optional[str] = None
    show_dir: Optional[str] = None
    show_num: int = 10
    export_smiyc: Optional[str] = None
    export_transform: str = 'rank'
    component_threshold: object = 'best-f1'
    per_image: bool = False
    bootstrap: Optional[dict] = None
    tta: bool = False
    id_eval: bool = True
    open_set_iou: bool = False
    sml_stats: Optional[str] = None
    sml_fit_on: str = 'train'
    fit_on: Optional[str] = None
    meta_classifier: Optional[str] = None
    vis_backends: Sequence[str] = ()

    @property
    def id_split(self) -> str:
        """The ID split the fitted scorers are fitted on (``fit_on``, else
        ``sml_fit_on``)."""
        return self.fit_on if self.fit_on is not None else self.sml_fit_on

    def validate(self) -> None:
        """Check the options, each error naming the option and the value.

        Checks what the options say on their own, reading no file but
        ``sml_stats`` (its existence): the files they name (dataset
        presets, the meta classifier) are loaded and checked when
        ``ood_test`` plans its run, still before the config or the
        checkpoint is read.

        Raises:
            ValueError: a value out of its range or options that do not go
                together (``tune_on`` without ``tune`` or a scorer fitted
                on it, ``maskomaly`` to fit without ``tune_on``,
                ``sml_stats``
                without ``sml``, ``meta_classifier`` with ``tta``,
                ``open_set_iou`` without ``id_eval``, ...).
            TypeError: a value of the wrong type (``bootstrap`` not a dict,
                ``per_image`` or ``open_set_iou`` not a bool).
            FileNotFoundError: no ``sml_stats`` file.
        """
        datasets = self.datasets
        if isinstance(datasets, (str, os.PathLike)) or not isinstance(
                datasets, Sequence) or not datasets:
            hint = (f' (one dataset: [{datasets!r}])'
                    if isinstance(datasets, str) else '')
            raise InvalidValueError(
                '`datasets` must be a non-empty list of dataset preset names '
                f'or files, got {datasets!r}{hint}')
        bad = [d for d in datasets if not isinstance(d, (str, os.PathLike))]
        if bad:
            raise InvalidTypeError('`datasets` holds names or paths, got '
                                   f'{bad[0]!r}')
        twice = sorted({str(d) for d in datasets if datasets.count(d) > 1})
        if twice:
            raise InvalidValueError(f'`datasets` names {twice} more than once')
        check_bootstrap(self.bootstrap)
        values = tune_values(self.tune)  # {parameter: grid values}
        tune = list(values)
        fitted = reference_fitted_scorers(self.scorers)
        if self.tune_on is not None and not tune and not fitted:
            raise InvalidValueError(
                f'`tune_on` ({self.tune_on!r}) is given but '
                'nothing to tune: add `tune` (--tune eta delta '
                'temperature)')
        if self.sml_fit_on not in SML_SPLITS:
            raise InvalidValueError(
                f'`sml_fit_on` must be one of {SML_SPLITS}, '
                f'got {self.sml_fit_on!r}')
        if self.fit_on is not None and self.fit_on not in SML_SPLITS:
            raise InvalidValueError(
                f'`fit_on` must be one of {SML_SPLITS}, got {self.fit_on!r}')
        if self.fit_on is not None and self.sml_fit_on != 'train' and \
                self.fit_on != self.sml_fit_on:
            raise InvalidValueError(
                f'`fit_on` ({self.fit_on!r}) and its older name '
                f'`sml_fit_on` ({self.sml_fit_on!r}) disagree: give one')
        scorers = self.scorers
        if scorers is not None:
            if isinstance(scorers, str) or not scorers:
                raise InvalidValueError(
                    '`scorers` must be a non-empty list of '
                    f'scorer names, got {scorers!r}')
            scorers = list(scorers)
            twice = sorted({n for n in scorers if scorers.count(n) > 1})
            if twice:
                raise InvalidValueError(
                    f'`scorers` names {twice} more than once')
        names = scorers if scorers is not None else list(DEFAULT_SCORERS)
        for name in names:
            build_scorer(name)  # ValueError listing the registered names
        if fitted and self.tune_on is None:
            raise InvalidValueError(
                f'scorer {fitted[0]!r} selects its queries on a labelled '
                'reference set: give it with `tune_on` (--tune-on DATASET, '
                'a dataset not among `datasets`), or pass a selection file '
                '(maskomaly:queries_file=FILE)')
        if self.sml_stats is not None:
            if 'sml' not in names:
                raise InvalidValueError(
                    '`sml_stats` is given but `sml` is not '
                    f'among the scorers {names}')
            if not osp.isfile(self.sml_stats):
                raise MissingInputError(
                    f'`sml_stats`: no file {self.sml_stats!r}')
        if isinstance(self.vis_backends, str) or not isinstance(
                self.vis_backends, Sequence):
            raise InvalidTypeError(
                '`vis_backends` must be a list of backend names, got '
                f'{self.vis_backends!r}')
        unknown = [b for b in self.vis_backends if b not in VIS_BACKENDS]
        if unknown:
            raise InvalidValueError(
                f'`vis_backends`: unknown backend {unknown[0]!r}; known: '
                f'{", ".join(sorted(VIS_BACKENDS))}')
        if self.meta_classifier is not None and self.tta:
            raise InvalidValueError(
                '`meta_classifier` with `tta`: meta classifiers are fitted '
                'on the features of single-scale predictions '
                '(tools/meta_classify.py has no TTA), so they are not '
                'applied to test-time-augmented ones')
        if tune and not restrict_grid(tuning_scorers(values), tune,
                                      scorers):
            raise InvalidValueError(
                f'`tune` {tune} has nothing to tune among the scorers '
                f'{scorers}: it tunes {tunable_types(tune)}')
        if self.export_transform not in EXPORT_TRANSFORMS:
            raise InvalidValueError(f'`export_transform` must be one of '
                                    f'{EXPORT_TRANSFORMS}, got '
                                    f'{self.export_transform!r}')
        if not isinstance(self.per_image, bool):
            raise InvalidTypeError(f'`per_image` must be a bool, got '
                                   f'{self.per_image!r}')
        parse_component_threshold(self.component_threshold)
        if not isinstance(self.open_set_iou, bool):
            raise InvalidTypeError(f'`open_set_iou` must be a bool, got '
                                   f'{self.open_set_iou!r}')
        if self.open_set_iou and not self.id_eval:
            raise InvalidValueError(
                '`open_set_iou` is computed in the ID pass, '
                'which `id_eval=False` (--no-id-eval) skips')
