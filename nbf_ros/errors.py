"""The project's error base class: anything derived from it is a user-facing problem.

The CLI prints such errors as one line and exits non-zero; the node reports them in
diagnostics. Everything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class NbfError(Exception):
    """Base of the errors a user can act on (bad file, bad option, missing runtime)."""


USER_ERRORS: tuple[type[BaseException], ...] = (NbfError, FileNotFoundError, PermissionError,
                                                 IsADirectoryError)
