"""Moved: the jobs of the `kssl` command live in `kssl.app` since 2026-12-01 (`kssl.app.jobs`,
`kssl.app.config`, ...). `from kssl.runs import run, RunConfig` still works, with a warning."""

import warnings

from kssl.app.config import RunConfig  # noqa: F401
from kssl.app.jobs import evaluate_job, export_job, finetune_job, pretrain_job, run  # noqa: F401

warnings.warn(
    "kssl.runs is kssl.app now: import run and the jobs from kssl.app.jobs, RunConfig from kssl.app.config.",
    DeprecationWarning,
    stacklevel=2,
)
