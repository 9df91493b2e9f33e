"""Label values shared by every part of the package (DESIGN.md).

OOD evaluation labels follow the Segment-Me-If-You-Can convention; outlier
exposure training marks proxy-OOD pixels with a value of its own so that
``ignore_index`` keeps its meaning. Kept free of imports: every layer may
use it.
"""

#: OOD evaluation label of an in-distribution pixel.
ID_LABEL = 0
#: OOD evaluation label of an out-of-distribution pixel.
OOD_LABEL = 1
#: The void label, not evaluated (OOD labels) and ignored by losses
#: (training labels).
IGNORE_INDEX = 255
#: Outlier-exposure training label of a proxy-OOD pixel; only losses that
#: handle it (entropy maximization) may see it.
PROXY_OOD_INDEX = 254

__all__ = ['ID_LABEL', 'OOD_LABEL', 'IGNORE_INDEX', 'PROXY_OOD_INDEX']
