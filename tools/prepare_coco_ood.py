"""Build the COCO outlier proxy (entropy-maximization paper, sec. 5).

The tool lives in the package:
``python -m mmseg_ood.tools.dataset_converters.prepare_coco_ood --help``.
"""
from mmseg_ood.tools.dataset_converters.prepare_coco_ood import main

if __name__ == '__main__':
    main()
