"""Errors a user can act on. Each message is one plain-language line: what went wrong and what to do."""


class LatihError(Exception):
    """Base for every failure caused by input or environment (never by a bug)."""


class DataError(LatihError):
    """The dataset, a photo or an archive cannot be used as given."""


class WeightsUnavailableError(LatihError):
    """Pretrained weights for a backbone cannot be had on this machine."""


class RunError(LatihError):
    """A run folder is missing, incomplete or damaged."""


class Cancelled(Exception):
    """Training was stopped by the user; not an error, the best checkpoint is kept."""
