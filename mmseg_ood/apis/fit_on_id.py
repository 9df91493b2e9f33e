"""Fit the scorers that need statistics of ID data, in one pass.

Some scorers are fitted on in-distribution data before they score: SML's
per-class max-logit statistics (Jung et al. 2021), and the feature-space
scorers' statistics of the embeddings (class moments, activation
histogram, embedding bank: :class:`~mmseg_ood.scorers.FeatureStatistics`).
:func:`fit_on_id` runs one evaluation pass over the config's own training
or validation images (the model's test pipeline, no augmentation) that
feeds what every scorer reads (the decode head's output and the captured
embeddings, before resizing) to all the statistics at once, image by image,
leaves out the repeats of distributed sampling and merges the ranks (each
statistic adds exactly; the embedding bank's sample does not depend on the
split across ranks). :func:`fitted_scorers` adds what the tools do around
it: each fit is written to the work dir bound to the checkpoint's SHA-256,
the config and the split (and the resolved settings that decide which
pixels it sees: dataset, test pipeline, ``test_cfg``, data preprocessor),
and reused while they stay the same. Under slide inference every crop's
pixels are added, so the overlaps of crops count more than once.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
import time
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..engine.evaluation_session import EvaluationSession
from ..errors import DamagedFileError, InvalidValueError
from ..evaluation import merge_across_ranks
from ..evaluation.metrics.sampler_padding import PerSampleAccumulators
from ..models.introspection import (describe_head, final_classifier,
                                    final_decode_head, head_kind)
from ..scorers import (BaseScorer, FeatureSpaceScorer, FeatureStatistics,
                       ScoreInputs, StandardizedMaxLogit, StatisticsSpec,
                       build_scorer, parse_scorer_spec)
from ..utils import file_sha256

__all__ = ['FIT_SPLITS', 'id_dataset', 'fit_on_id', 'fitted_scorers',
           'fitted_on_id',
           'feature_statistics_file', 'sml_statistics_file']

#: The ID splits scorers can be fitted on (the config's train or val set).
FIT_SPLITS = ('train', 'val')


class _FitRecorder(BaseScorer):
    """Feeds each captured forward pass to the statistics being fitted,
    image by image; scores zeros.

    Each test iteration (one image: the pass's batch size is 1; with TTA,
    every view of it) is a sample of :attr:`samples`, so that a padding
    repeat of distributed sampling is left out of the fit.
    """
    name = '_fit_on_id'

    def __init__(self, factories: Dict[str, Callable[[], object]],
                 embeddings: bool):
        self.factories = factories
        self.requires_embeddings = embeddings
        self.samples = PerSampleAccumulators()
        recorder = self

        class SampleBoundaries(Hook):
            def before_test_iter(self, runner, batch_idx, data_batch=None):
                recorder.samples.start_sample()

        self.boundaries = SampleBoundaries()

    def score(self, inputs: ScoreInputs) -> torch.Tensor:
        for name, make in self.factories.items():
            self.samples.get(name, make).partial_fit(inputs)
        return inputs.logits.new_zeros(inputs.logits[:, 0].shape)


def id_dataset(cfg, split: str) -> dict:
    """The config's ``split`` dataset (``train`` or ``val``), to be read with
    the test pipeline.

    Args:
        cfg: The loaded model config (``mmengine.Config``); its
            ``<split>_dataloader.dataset`` is read (through wrappers such as
            ``RepeatDataset``).
        split: ``'train'`` or ``'val'``.

    Returns:
        dict: The dataset config without its ``pipeline`` (the evaluation
        session supplies the test pipeline).

    Raises:
        ValueError: unknown split, or a training set wrapped in a dataset
            type this function cannot see through.
    """
    if split not in FIT_SPLITS:
        raise InvalidValueError(f'`split` must be one of {FIT_SPLITS}, got '
                                f'{split!r}')
    loader = cfg.get(f'{split}_dataloader')
    if loader is None:
        raise InvalidValueError(
            f'the config has no {split}_dataloader to fit the scorers on')
    dataset = loader.dataset.to_dict() if hasattr(
        loader.dataset, 'to_dict') else dict(loader.dataset)
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'),
                                                   dict):
        dataset = dict(dataset['dataset'])  # RepeatDataset and the like
    if 'pipeline' not in dataset:
        raise InvalidValueError(
            f"cannot fit on the {split} set: its dataset "
            f"({dataset.get('type')}) has no pipeline of its own; fit on the "
            "other split or pass fitted statistics (`stats_file`)")
    dataset.pop('pipeline')  # the session uses the test pipeline
    return dataset


def fit_on_id(session: EvaluationSession,
              factories: Dict[str, Callable[[], object]],
              split: str = 'train', max_images: Optional[int] = None,
              embeddings: bool = False) -> 'OrderedDict[str, object]':
    """Statistics of the session's model on the config's ID ``split``, all
    fitted in one pass.

    Args:
        session: The model.
        factories: Name -> a callable making an empty statistic, an object
            with ``partial_fit(ScoreInputs)`` and the accumulator protocol
            (``state_dict``, ``load_state_dict`` adding, ``empty_like``):
            :class:`~mmseg_ood.scorers.StandardizedMaxLogit`,
            :class:`~mmseg_ood.scorers.FeatureStatistics`.
        split: ``'train'`` or ``'val'``.
        max_images: Use only the first images (``indices`` of the dataset).
        embeddings: A statistic reads the embeddings (the pass then needs a
            head with a final linear classifier).

    Returns:
        OrderedDict: name -> fitted statistic, the same on every rank.

    Raises:
        RuntimeError: the split has no images.
    """
    dataset = id_dataset(session.cfg, split)
    if max_images is not None:
        dataset['indices'] = int(max_images)
    recorder = _FitRecorder(factories, embeddings)
    done = session.run_pass(dataset, name=f'fit_on_{split}',
                            scorers={recorder.name: recorder}, metrics=[],
                            hooks=[recorder.boundaries])
    merged = merge_across_ranks(recorder.samples.finish(done.size),
                                lambda name: factories[name]())
    missing = [n for n in factories if n not in merged]
    if missing:
        raise RuntimeError(f'fitting {missing}: no images in the {split} set')
    return merged


def sml_statistics_file(cache_dir: str, split: str) -> str:
    """Where the tools keep SML's statistics fitted on ``split``.

    Args:
        cache_dir: The folder (the run's work dir).
        split: ``'train'`` or ``'val'``.
    """
    return osp.join(cache_dir, f'sml_statistics_{split}.json')


def feature_statistics_file(cache_dir: str, split: str) -> str:
    """Where the tools keep the feature statistics fitted on ``split``.

    Args:
        cache_dir: The folder (the run's work dir).
        split: ``'train'`` or ``'val'``.
    """
    return osp.join(cache_dir, f'feature_statistics_{split}.npz')


def _binding(session: EvaluationSession, split: str,
             sha256: Optional[str] = None) -> dict:
    """What a fit is bound to: the checkpoint's SHA-256, the config file,
    the split, and a SHA-256 of everything of the resolved config (with
    ``--cfg-options``) that decides which pixels the fit sees: the split's
    dataset, the test pipeline, the model's ``test_cfg`` (whole or slide)
    and its data preprocessor."""
    cfg = session.cfg
    model = cfg.get('model', {})
    loader = cfg.get('test_dataloader', {})
    seen = dict(dataset=id_dataset(cfg, split),
                pipeline=loader.get('dataset', {}).get('pipeline'),
                test_cfg=model.get('test_cfg'),
                data_preprocessor=model.get('data_preprocessor'))
    text = json.dumps(_plain(seen), sort_keys=True, default=repr)
    return dict(checkpoint_sha256=sha256 or file_sha256(session.checkpoint),
                config=osp.abspath(session.config), split=split,
                fit_config_sha256=hashlib.sha256(text.encode()).hexdigest())


def _plain(value):
    """A config value as plain dicts and lists (for a stable JSON)."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _reusable(meta: dict, binding: dict) -> bool:
    return all(meta.get(k) == v for k, v in binding.items())


def _named_config(spec) -> Optional[Tuple[str, dict]]:
    """``(name, config dict)`` of a scorer spec given as text or a dict
    (named as ``ood_test`` reports it); ``None`` for an instance or a
    ``(name, scorer)`` pair, used as they are."""
    if not isinstance(spec, (str, dict)):
        return None
    cfg = parse_scorer_spec(spec) if isinstance(spec, str) else dict(spec)
    name = spec if isinstance(spec, str) else \
        cfg.pop('name', None) or cfg['type']
    return name, cfg


def fitted_on_id(spec, sml_stats: Optional[str] = None) -> bool:
    """Whether :func:`fitted_scorers` fits scorer ``spec`` on the ID split
    (if the model supports it): it needs a fit and has no ``stats_file``
    (``sml`` also no ``sml_stats``).

    Args:
        spec: A name or ``'NAME:key=value'`` text, a config dict or an
            instance (used as it is: ``False``).
        sml_stats: The statistics file given for ``sml``, if any.
    """
    named = _named_config(spec)
    if named is None or named[1].get('stats_file') is not None:
        return False
    if named[1]['type'] == 'sml':
        return sml_stats is None
    return build_scorer(named[1]).requires_fit


def _supported(session: EvaluationSession, scorer: BaseScorer) -> bool:
    head = final_decode_head(session.model)
    return scorer.unsupported_reason(
        final_classifier(head) is not None, head_kind(head),
        describe_head(head)) is None


def fitted_scorers(session: EvaluationSession, specs: List,
                   split: str = 'train', cache_dir: Optional[str] = None,
                   sml_stats: Optional[str] = None
                   ) -> Tuple[List, Dict[str, dict]]:
    """``specs`` with every scorer that needs ID statistics fitted.

    The scorers given without a ``stats_file`` (``sml`` also without
    ``sml_stats``) get their statistics from the files in ``cache_dir``
    while those were fitted on the same checkpoint (SHA-256), config and
    split (and, for the feature statistics, collected at least what every
    scorer needs: ``bank_size`` and the rest); otherwise all of them are
    fitted in one pass (:func:`fit_on_id`) and the files written (rank 0,
    atomically). A scorer this model cannot run (an embedding scorer on a
    head without a linear classifier) is left as given: the scoring pass
    skips it with the usual notice, or refuses it.

    Args:
        session: The model.
        specs: Scorer specs as ``ood_test`` takes them (names,
            ``'NAME:key=value'`` text, config dicts, instances).
        split: ``'train'`` or ``'val'``.
        cache_dir: Folder of the files; default: the session's work dir.
        sml_stats: A fitted SML statistics file for ``sml`` given by name.

    Returns:
        tuple: The specs, each fitted scorer as ``(name, scorer)``; and by
        scorer name what ``results.json["fitted"]`` records (the file, the
        split, whether it was fitted in this run, the ID pixels, and the
        wall time of the fitting pass, shared by every scorer fitted in
        it, as ``pass_seconds``).
    """
    if split not in FIT_SPLITS:
        raise InvalidValueError(f'`split` must be one of {FIT_SPLITS}, got '
                                f'{split!r}')
    cache_dir = cache_dir or session.work_dir
    out = list(specs)
    sml_index, feature_index = [], []
    built = {}
    for i, spec in enumerate(specs):
        named = _named_config(spec)
        if named is None or named[1].get('stats_file') is not None:
            continue
        name, cfg = named
        if cfg.get('type') == 'sml':
            if sml_stats is not None:
                out[i] = (name, build_scorer(dict(cfg, stats_file=sml_stats)))
            else:
                built[i] = (name, build_scorer(cfg))
                sml_index.append(i)
            continue
        scorer = build_scorer(cfg)
        if isinstance(scorer, FeatureSpaceScorer) and \
                _supported(session, scorer):
            built[i] = (name, scorer)
            feature_index.append(i)
    record: Dict[str, dict] = {}
    if not sml_index and not feature_index:
        return out, record
    sha256 = file_sha256(session.checkpoint)
    binding = _binding(session, split, sha256)
    factories, cached = {}, {}
    sml_path = sml_statistics_file(cache_dir, split)
    if sml_index:
        sml = _cached_sml(sml_path, binding)
        if sml is None:
            factories['sml'] = StandardizedMaxLogit
        else:
            cached['sml'] = sml
    feature_path = feature_statistics_file(cache_dir, split)
    spec = StatisticsSpec.union(built[i][1] for i in feature_index)
    if feature_index:
        stats, previous = _cached_features(feature_path, binding, spec)
        if stats is None:
            # what the file held stays collected: a refit for a larger
            # bank still serves the scorers the file served
            spec = spec | previous
            factories['features'] = lambda: FeatureStatistics(dict(spec))
        else:
            cached['features'] = stats
    start = time.perf_counter()
    fitted = fit_on_id(session, factories, split,
                       embeddings='features' in factories) \
        if factories else {}
    seconds = round(time.perf_counter() - start, 3)
    meta = dict(binding, checkpoint=osp.abspath(session.checkpoint))
    if get_rank() == 0:
        os.makedirs(cache_dir, exist_ok=True)
        if 'sml' in fitted:
            fitted['sml'].save(sml_path, meta=meta)
            print_log(f'SML: statistics of the {split} set saved to '
                      f'{sml_path}', logger='current')
        if 'features' in fitted:
            fitted['features'].save(feature_path, meta=meta)
            print_log(f'feature statistics of the {split} set saved to '
                      f'{feature_path}', logger='current')
    for key, indices, path in (('sml', sml_index, sml_path),
                               ('features', feature_index, feature_path)):
        if not indices:
            continue
        stats = fitted.get(key, cached.get(key))
        for i in indices:
            name, scorer = built[i]
            if key == 'sml':
                scorer.load_state_dict(stats.state_dict())
                pixels = int(stats.stats.count.sum())
            else:
                scorer.set_statistics(stats)
                pixels = stats.pixels
            out[i] = (name, scorer)
            record[name] = dict(file=osp.abspath(path), split=split,
                                fitted_in_this_run=key in fitted,
                                pixels=pixels)
            if key in fitted:  # the one pass, shared by all of them
                record[name]['pass_seconds'] = seconds
    return out, record


def _cached_sml(path: str, binding: dict) -> Optional[StandardizedMaxLogit]:
    if not osp.isfile(path):
        return None
    try:
        cached = StandardizedMaxLogit(stats_file=path)
    except ValueError as e:  # a damaged file, JSON or fields
        print_log(f'SML: {path} cannot be read ({e}); fitting again',
                  logger='current')
        return None
    if _reusable(cached.meta, binding):
        print_log(f'SML: reusing the statistics in {path}', logger='current')
        return cached
    print_log(f'SML: {path} was fitted on another checkpoint, config or '
              'split; fitting again', logger='current')
    return None


def _cached_features(path: str, binding: dict, spec: StatisticsSpec
                     ) -> Tuple[Optional[FeatureStatistics], StatisticsSpec]:
    """The cached statistics if they serve ``spec`` (else ``None``), and
    the spec of a file fitted on the same model and split (else empty)."""
    if not osp.isfile(path):
        return None, StatisticsSpec()
    try:
        cached = FeatureStatistics.load(path)
    except DamagedFileError as e:
        print_log(f'feature statistics: {e}; fitting again',
                  logger='current')
        return None, StatisticsSpec()
    same_model = _reusable(cached.meta, binding)
    if same_model and cached.spec.covers(spec):
        print_log(f'feature statistics: reusing {path}', logger='current')
        return cached, cached.spec
    print_log(f'feature statistics: {path} was fitted on another '
              'checkpoint, config or split, or without what these scorers '
              f'need ({dict(spec)}); fitting again', logger='current')
    return None, cached.spec if same_model else StatisticsSpec()
