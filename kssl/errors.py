"""kssl's errors for input it cannot use: a value, a file or a folder a user gave it.

Raised at the boundary where kssl checks what it was given; the message names the value
and says what to do. The `kssl` command prints these as one line and exits with code 2;
any other exception is a bug (in kssl or a library) and keeps its traceback.

Each is also the built-in exception a Python caller would expect (`ValueError`,
`FileExistsError`, ...), so `except ValueError` keeps working.

Examples:
    >>> issubclass(OutputExistsError, FileExistsError) and issubclass(OutputExistsError, InputError)
    True
"""

from __future__ import annotations


class InputError(ValueError):
    """Input kssl cannot use as given; the message says what to do."""


class DataError(InputError):
    """A data source that cannot be read as asked."""


class OutputExistsError(InputError, FileExistsError):
    """The output folder exists (and may not be replaced), or holds another run's unfinished work."""


class UnwritableOutputError(InputError, PermissionError):
    """The output folder cannot be written."""


class MissingInputError(InputError, FileNotFoundError):
    """A model file or folder that should exist does not."""


class DivergedError(InputError, FloatingPointError):
    """Training's loss stopped being finite: the settings (most often the learning rate)
    cannot train this model on this data. Nothing of the diverged training is saved."""


# What the machine refuses, not kssl's input nor a bug: a full disk, a quota, a read-only
# file system, a folder this user cannot write.
_REFUSED_WRITES = {"ENOSPC": "the disk is full", "EDQUOT": "the disk quota is used up",
                   "EROFS": "the file system is read-only", "EACCES": "permission denied",
                   "EPERM": "permission denied"}  # fmt: skip


def refused_write_message(error: BaseException) -> str | None:
    """The one-line message for a write the machine refused (`OSError` with ENOSPC, EDQUOT,
    EROFS, EACCES or EPERM, or TensorFlow's error of the same), else None (a bug keeps its
    traceback).

    Examples:
        >>> import errno
        >>> refused_write_message(OSError(errno.ENOSPC, "No space left on device", "/out/model.keras"))[:52]
        "cannot write '/out/model.keras': the disk is full. F"
        >>> refused_write_message(ValueError("a bug")) is None
        True
    """
    import errno

    reason = None
    if isinstance(error, OSError) and error.errno is not None:
        reason = _REFUSED_WRITES.get(errno.errorcode.get(error.errno, ""))
    text = str(error)
    for code, strerror in ((errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")):
        if reason is None and type(error).__module__.startswith("tensorflow") and strerror in text:
            reason = _REFUSED_WRITES[errno.errorcode[code]]
    if reason is None:
        return None
    where = repr(str(error.filename)) if getattr(error, "filename", None) else "a file"
    return (f"cannot write {where}: {reason}. Free space or choose another --out, then run the same command again "
            "(a run resumes from its last checkpoint).")  # fmt: skip
