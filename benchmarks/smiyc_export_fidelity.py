"""What the SMIYC files give back: metrics from the exported float16 maps vs
the tool's own, raw cast vs the rank-preserving transform.

Runs ``ood_test`` once with ``--export-smiyc`` in each export mode
(``none``: the raw scores cast to float16; ``rank``: the monotone transform
into [0, 1], the default), reads every exported file back, evaluates it
exactly against the labels (:func:`~mmseg_ood.evaluation.
pixel_ood_metrics`) and prints, per scorer, the tool's AUROC / AP / FPR95,
the differences of each export's, and the distinct values in the files.

    python benchmarks/smiyc_export_fidelity.py CONFIG CHECKPOINT \
        [--dataset synthetic_ood] [--work-dir DIR]

(the dataset's data root as its preset says, e.g. ``MMSEG_OOD_DATA``).
"""
import argparse
import json
import os.path as osp
import tempfile

import numpy as np


def exported_metrics(export_dir, preset, scorers):
    """Scorer -> exact metrics of the exported files, and their number of
    distinct values."""
    import h5py
    from mmengine.registry import init_default_scope

    from mmseg.registry import DATASETS
    from mmseg_ood.datasets import LoadOODAnnotations
    from mmseg_ood.formats.smiyc import smiyc_frame_id
    from mmseg_ood.evaluation import pixel_ood_metrics
    init_default_scope('mmseg')
    ds = DATASETS.build(dict(preset.dataset, pipeline=[], lazy_init=False))
    load = LoadOODAnnotations()
    labels, frames = [], []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        labels.append(load(dict(info, seg_fields=[]))['gt_seg_map'].ravel())
        frames.append(smiyc_frame_id(info['img_path']))
    y = np.concatenate(labels)
    out = {}
    for s in scorers:
        values = []
        for fid in frames:
            with h5py.File(osp.join(export_dir, 'anomaly_p', s,
                                    preset.smiyc_name, f'{fid}.hdf5'),
                           'r') as f:
                values.append(f['value'][:].astype(np.float32).ravel())
        v = np.concatenate(values)
        out[s] = dict(pixel_ood_metrics(v, y), distinct=np.unique(v).size)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--dataset', default='synthetic_ood')
    p.add_argument('--work-dir', default=None)
    args = p.parse_args()

    from mmseg_ood.apis import ood_test
    from mmseg_ood.datasets import load_dataset_preset
    work = args.work_dir or tempfile.mkdtemp(prefix='mmseg_ood_fidelity_')
    preset = load_dataset_preset(args.dataset)
    runs = {}
    for mode in ('none', 'rank'):
        export = osp.join(work, f'export_{mode}')
        payload = ood_test(args.config, args.checkpoint,
                           osp.join(work, f'ood_{mode}'),
                           datasets=[args.dataset], export_smiyc=export,
                           export_transform=mode, id_eval=False)
        tool = payload['results'][preset.name]
        runs[mode] = exported_metrics(export, preset, list(tool))
    print(f'\n{args.dataset}: metrics from the exported files minus the '
          "tool's (percentage points), distinct values in the files")
    print('| scorer | AUROC | AP | FPR95 | raw: dAUROC | raw: dAP | '
          'raw: dFPR95 | raw: values | rank: dAUROC | rank: dAP | '
          'rank: dFPR95 | rank: values |')
    print('|' + '---|' * 13)
    worst = {m: 0.0 for m in runs}
    for s, r in tool.items():
        row = [s] + [f'{100 * r[k]:.2f}' for k in ('auroc', 'ap', 'fpr95')]
        for mode in ('none', 'rank'):
            m = runs[mode][s]
            d = [m[k] - r[k] for k in ('auroc', 'ap', 'fpr95')]
            worst[mode] = max(worst[mode], *map(abs, d))
            row += [f'{100 * x:+.3f}' for x in d] + [str(m['distinct'])]
        print('| ' + ' | '.join(row) + ' |')
    print(f'\nlargest |difference| (fraction): raw cast {worst["none"]:.2e}, '
          f'rank transform {worst["rank"]:.2e}')
    with open(osp.join(work, 'fidelity.json'), 'w') as f:
        json.dump(dict(tool=tool, files=runs), f, indent=1, default=float)
    print(f'details: {osp.join(work, "fidelity.json")}')


if __name__ == '__main__':
    main()
