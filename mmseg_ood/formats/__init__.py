"""Files the project reads and writes besides its reports: SMIYC
submission frames and their score transform (:class:`SMIYCExport`, the one
export pipeline), score-map spills, and the deployment threshold file
written by ``tools/calibrate_ood.py``."""
from .smiyc import SMIYCExport, smiyc_frame_id
from .threshold_file import (CalibrationMismatchError, OODCalibration,
                             decide_ood)

__all__ = [
    'SMIYCExport', 'smiyc_frame_id', 'CalibrationMismatchError',
    'OODCalibration', 'decide_ood'
]
