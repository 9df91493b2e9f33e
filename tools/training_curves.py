"""Training curves of several runs: loss and per-class IoU over iterations.

The tool lives in the package:
``python -m mmseg_ood.tools.analysis.training_curves --help``.
"""
from mmseg_ood.tools.analysis.training_curves import main

if __name__ == '__main__':
    main()
