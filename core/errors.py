"""Errors a user can act on. Each message is one plain-language line: what went wrong and what to do."""


import errno as _errno

# The errnos that mean "no room": core.diskspace raises DiskFullError for these, os_reason says so.
FULL_ERRNOS = (_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG)


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


# What the operating system said, in the catalogue's words (the UI may be in Bahasa; strerror is
# always English). Errors not listed keep the system's own text.
_OS_REASONS = {
    "EACCES": "os.permission", "EPERM": "os.permission", "ENOENT": "os.missing", "EISDIR": "os.is_folder",
    "ENOTDIR": "os.not_folder", "EROFS": "os.read_only", "EIO": "os.io", "ENAMETOOLONG": "os.name_too_long", "ELOOP": "os.links", "EMFILE": "os.too_many_open",
    "ENFILE": "os.too_many_open", "EBUSY": "os.busy",
}


def os_reason(exc: OSError):
    """Why the system refused, as a catalogue Msg where we have words for it, else its own text."""
    import errno

    from core.i18n import Msg

    if exc.errno in FULL_ERRNOS:
        return Msg("os.disk_full")
    key = _OS_REASONS.get(errno.errorcode.get(exc.errno or 0, ""))
    return Msg(key) if key else str(exc.strerror or exc)


def os_message(exc: OSError):
    """One line for a failed file operation: the path (when the system named one) and why."""
    from core.i18n import Msg

    path = exc.filename if exc.filename is not None else ""
    return Msg("os.failed_at", path=str(path), reason=os_reason(exc)) if path else Msg("os.failed", reason=os_reason(exc))
