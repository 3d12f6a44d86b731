"""kssl's input errors (`kssl.errors`): each is also the built-in a Python caller would catch,
and a refused write names the file and what to do."""

import errno

import pytest

from kssl import errors


@pytest.mark.parametrize("error, builtin", [(errors.DataError, ValueError), (errors.OutputExistsError, FileExistsError),
                                            (errors.UnwritableOutputError, PermissionError),
                                            (errors.MissingInputError, FileNotFoundError),
                                            (errors.DivergedError, FloatingPointError)])  # fmt: skip
def test_each_input_error_is_the_builtin_a_caller_expects(error, builtin):
    assert issubclass(error, errors.InputError) and issubclass(error, builtin)
    with pytest.raises(builtin):
        raise error("message")


@pytest.mark.parametrize("code, says", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only"),
                                        (errno.EACCES, "permission")])  # fmt: skip
def test_a_refused_write_names_the_file_and_the_cause(code, says):
    message = errors.refused_write_message(OSError(code, "os says", "/out/run/metrics.json"))
    assert "/out/run/metrics.json" in message and says in message.lower()
    assert errors.refused_write_message(OSError(errno.EINVAL, "bug", "/x")) is None
