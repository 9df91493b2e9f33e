"""The documented commands that tests/docs/test_doc_commands.py does not
run, each with the reason.

``NOT_RUN[page][substring] = reason``: a command of ``docs/en/<page>``
that contains ``substring`` is not run. Every entry must match a command
of its page (the test refuses stale entries).
"""
NOT_RUN = {
    'get_started/gpu_check.md': {
        'gpu_check.sh prepare': "downloads wheels and mmcv's source "
                                'from the network',
        'GPU_CHECK_QUICK=1': 'runs every benchmark of the GPU check on '
                             'the CPU: about 2 minutes on 2 cores',
    },
    'get_started/install.md': {
        'make demo': 'the whole demo: trains for 5-11 minutes',
        'make test': 'the test suite itself',
        'make docs': 'builds this site: tests/docs/test_docs_site.py '
                     'runs the same build',
        "TORCH_SPEC=": 'installs another torch and rebuilds mmcv',
        'python -m venv': 'creates a virtual environment and installs '
                          'into it',
        'pip install': 'installs packages from the network',
    },
    'methods/outlier_supervised_mask_classification.md': {
        'bash scripts/mask2former_comparison.sh': 'the whole comparison: '
        'trains 9 Mask2Formers and 2 DeepLabV3+ (about an hour on 2 cores)',
    },
    'results/mask_classification.md': {
        'bash scripts/mask2former_comparison.sh': 'the whole comparison: '
        'trains 9 Mask2Formers and 2 DeepLabV3+ (about an hour on 2 cores)',
    },
    'get_started/demo.md': {
        'make demo': 'the whole demo: trains for 5-11 minutes',
    },
    'get_started/post_hoc.md': {
        'deeplabv3plus_r101-d8_4xb2-80k_cityscapes': 'needs the model '
        "zoo's Cityscapes weights and the real benchmarks",
    },
    'get_started/benchmarks.md': {
        'export SMIYC_ROOT': 'points at real benchmark data',
        'road_anomaly21 road_obstacle21': 'needs the real benchmarks and '
        "the model zoo's Cityscapes weights",
    },
    # helper B: user_guides pages of the analysis and dataset tools
    'user_guides/meta_classify.md': {
        '--save work_dirs/meta/demo/meta.json':
            "needs a trained model: the sandbox's 2-iteration demo model "
            'has entropy 1 everywhere, so every segment is a true positive '
            'and no classifier can be fitted',
        '--meta-classifier work_dirs/meta/demo/meta.json':
            'reads the classifiers of the --save run above, which cannot '
            "be fitted on the sandbox's 2-iteration model",
        'bash scripts/meta_classification.sh':
            'the whole study: trains the demo model and an entropy-'
            'maximization fine-tune if missing (minutes on 2 cores)',
    },
    'user_guides/robustness_test.md': {
        'bash scripts/robustness_comparison.sh':
            'trains three models and runs every corruption with MSC: '
            'about 40 minutes even on 20 images',
    },
    'user_guides/compare_results.md': {
        'bash scripts/compare_ood_training.sh':
            'trains five models on the objects benchmark, about 7 minutes '
            'each on 2 cores',
    },
    'user_guides/rerank_proposals.md': {
        'bash scripts/compare_ood_training.sh':
            'trains a baseline and three fine-tunes before re-ranking: '
            'about half an hour on 2 cores',
    },
    'user_guides/seed_summary.md': {
        'bash scripts/seed_study.sh':
            'trains every model with 3 seeds: hours on 2 cores',
    },
    'user_guides/prepare_coco_ood.md': {
        'tools/prepare_coco_ood.py':
            'needs the real COCO 2017 download (about 18 GB) and '
            'pycocotools, which the sandbox does not have',
    },
    'user_guides/train_test.md': {
        'torchrun':
            'needs several processes (torchrun with gloo); the 2-process '
            'runs are tested by tests/e2e/test_distributed.py (--run-slow)',
    },
    'user_guides/own_project.md': {
        'torchrun':
            'needs several processes (torchrun with gloo); the 2-process '
            'runs are tested by tests/e2e/test_distributed.py',
        'make_synthetic data/synthetic':
            'writes the full synthetic benchmark (about 20 s) over the '
            "sandbox's tiny one in data/synthetic",
    },
    'results/benchmarks.md': {
        'python benchmarks/':
            'a benchmark: minutes, timings only',
    },
    'results/meta_classification.md': {
        'bash scripts/meta_classification.sh':
            'fine-tunes the demo model and runs meta_classify and ood_test '
            'on both models: about 5 min on 2 CPU cores (322 s measured)',
    },
    'results/model_zoo.md': {
        'python benchmarks/model_zoo_scoring.py':
            'a benchmark: minutes, timings only (builds and scores 50 '
            'model-zoo families, about 5 min)',
        'pytest tests/models/test_model_zoo_families.py':
            "the slow test suite's model-zoo sweep (pytest --run-slow), "
            'about 5 min',
    },
    'results/recipes.md': {
        ('export LAF_ROOT=/data/lost_and_found SMIYC_ROOT=/data/smiyc '
         'ROAD_ANOMALY_ROOT=/data/RoadAnomaly_jpg'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('wget -P checkpoints https://download.openmmlab.com/mmsegmentation/'
         'v0.5/deeplabv3plus/deeplabv3plus_r101-d8_512x1024_80k_cityscapes/'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('python tools/ood_test.py configs/recipes/'
         'deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024_ood.py'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        'export COCO_ROOT=/data/coco COCO_OOD_ROOT=data/coco_ood':
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        'python tools/prepare_coco_ood.py $COCO_ROOT $COCO_OOD_ROOT':
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        'deeplabv3plus_r101-d8-entropy-max_4xb2-4e':
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        'export DTD_ROOT=/data/dtd':
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('wget -P checkpoints https://download.openmmlab.com/mmsegmentation/'
         'v0.5/deeplabv3plus/deeplabv3plus_r101-d8_512x512_40k_voc12aug/'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('python tools/test.py configs/recipes/'
         'deeplabv3plus_r101-d8_4xb4-20k-ft_voc12aug-512x512.py'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        'python tools/convert_checkpoint.py':
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('tools/train.py configs/recipes/'
         'deeplabv3plus_r101-d8_4xb4-20k-ft_voc12aug-512x512.py'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('tools/train.py configs/recipes/'
         'deeplabv3plus_r101-d8-ibe_4xb4-20k-ft_voc12aug-512x512.py'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('python tools/test.py configs/recipes/'
         'deeplabv3plus_r101-d8-ibe_4xb4-20k-ft_voc12aug-512x512.py'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('python tools/make_synthetic.py $MMSEG_OOD_DATA --variants objects '
         '--num-image-ood 100'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('python tools/ood_test.py configs/recipes/'
         'deeplabv3plus_r101-d8_4xb4-20k-ft_voc12aug-512x512.py'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('python tools/ood_test.py configs/recipes/'
         'deeplabv3plus_r101-d8-ibe_4xb4-20k-ft_voc12aug-512x512.py'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('tools/train.py configs/scribe/'
         'deeplabv3plus_r50-d8_2xb15-20k_voc12aug-224x224.py'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('tools/train.py configs/scribe/'
         'deeplabv3plus_r50-d8-ibe_2xb15-20k_voc12aug-224x224.py'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        ('tools/train.py configs/scribe/'
         'deeplabv3plus_r50-d8-scribe_2xb15-20k_voc12aug-224x224.py'):
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
        'python tools/robustness_test.py':
            'real benchmark data and zoo weights; tests/e2e/test_recipes.py '
            "checks them through the tools' parsers",
    },
    'results/representation.md': {
        'bash scripts/robustness_comparison.sh':
            'trains the baseline, IBE and SCrIBE objects models if missing, '
            'then 276 robustness cells and the representation analysis: '
            'about 42 min on 2 CPU cores (2441 s + 50 s measured)',
    },
    'results/robustness.md': {
        'bash scripts/robustness_comparison.sh':
            'trains the baseline, IBE and SCrIBE objects models if missing, '
            'then 276 robustness cells and the representation analysis: '
            'about 42 min on 2 CPU cores (2441 s + 50 s measured)',
    },
    'results/seed_claims.md': {
        'bash scripts/seed_study.sh':
            'trains and evaluates every model of the seed claims with 3 '
            'seeds: hours on 2 CPU cores',
    },
    'results/synthetic_benchmark.md': {
        'make demo':
            'installs everything, generates the full benchmark and trains '
            'the demo model: 6-15 min on 2 CPU cores',
    },
    'results/training_comparisons.md': {
        'bash scripts/compare_ood_training.sh':
            'trains several models, about 6-7 min each on 2 CPU cores '
            '(12-14 min for the 600-iteration ones)',
        'python tools/training_curves.py WORK/':
            'reads the training logs of the UOI fine-tunes above (WORK: '
            'their work dir)',
        'python tools/rerank_proposals.py':
            "needs the fine-tuned checkpoints of the runs above ('...' "
            'stands for the others)',
        'bash scripts/seed_study.sh':
            'trains and evaluates every model of the seed claims with 3 '
            'seeds: hours on 2 CPU cores',
    },
    # helper C: methods/ and evaluation/ pages
    'methods/meta_classification.md': {
        '--save work_dirs/meta/meta.json':
            "needs a trained model: the sandbox's 2-iteration demo model "
            'has entropy 1 everywhere, so every segment is a true positive '
            'and no classifier can be fitted',
        '--meta-classifier work_dirs/meta/meta.json':
            'reads the classifiers of the --save run above, which cannot '
            "be fitted on the sandbox's 2-iteration model",
    },
}
