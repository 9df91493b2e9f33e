"""Calibrate an OOD decision threshold: ``calibration.json`` for
``tools/ood_infer.py`` and ``tools/export_onnx.py``.

The tool lives in the package:
``python -m mmseg_ood.tools.calibrate_ood --help``.
"""
from mmseg_ood.tools.calibrate_ood import main

if __name__ == '__main__':
    main()
