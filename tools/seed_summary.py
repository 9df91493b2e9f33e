"""Calibration and background IoU over training seeds.

The tool lives in the package:
``python -m mmseg_ood.tools.analysis.seed_summary --help``.
"""
from mmseg_ood.tools.analysis.seed_summary import main

if __name__ == '__main__':
    main()
