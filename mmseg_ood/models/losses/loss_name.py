"""The ``loss_name`` check shared by the losses."""
from mmseg_ood.errors import InvalidValueError


def check_loss_name(loss_name) -> str:
    """Return ``loss_name`` if mmengine will back-propagate it.

    mmengine's ``parse_losses`` sums only the entries of the loss dict whose
    key starts with ``loss``; mmseg's convention (and this package's) is the
    ``loss_`` prefix. Any other name would be logged but silently not
    trained.

    Args:
        loss_name: The key the loss's value will have in the loss dict.

    Returns:
        str: ``loss_name`` unchanged.

    Raises:
        ValueError: ``loss_name`` is not a str starting with ``loss_``.
    """
    if not isinstance(loss_name, str) or not loss_name.startswith('loss_'):
        raise InvalidValueError(
            '`loss_name` must start with "loss_" (mmengine '
            'back-propagates only such losses), got '
            f'{loss_name!r}')
    return loss_name
