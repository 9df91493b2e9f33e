"""Export a checkpoint with its calibrated OOD scorer and threshold to ONNX.

The tool lives in the package:
``python -m mmseg_ood.tools.export_onnx --help``.
"""
from mmseg_ood.tools.export_onnx import main

if __name__ == '__main__':
    main()
