"""Generate the synthetic OOD benchmark (deterministic from --seed).

The tool lives in the package:
``python -m mmseg_ood.tools.dataset_converters.make_synthetic --help``.
"""
from mmseg_ood.tools.dataset_converters.make_synthetic import main

if __name__ == '__main__':
    main()
