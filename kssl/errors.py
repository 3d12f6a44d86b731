"""kssl's errors for input it cannot use: a value, a file or a folder a user gave it.

Raised at the boundary where kssl checks what it was given; the message names the value
and says what to do. The `kssl` command prints these as one line and exits with code 2;
any other exception is a bug (in kssl or a library) and keeps its traceback.

Each is also the built-in exception a Python caller would expect (`ValueError`,
`FileExistsError`, ...), so `except ValueError` keeps working.

Example:
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
