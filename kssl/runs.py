"""The jobs of the `kssl` command, by their names before 2026-12-01: they live in
`kssl.app` now, one job a file (`config`, `staging`, `data`, `stages`, `jobs`,
`report`). Kept so that `from kssl.runs import run, RunConfig` goes on working."""

from kssl.app.config import RunConfig  # noqa: F401
from kssl.app.data import load_train_test  # noqa: F401
from kssl.app.jobs import evaluate_job, export_job, finetune_job, pretrain_job, run, start_strategy  # noqa: F401
from kssl.app.report import results_table  # noqa: F401
from kssl.app.staging import check_output_folder, file_sha256, load_encoder, staged_folder  # noqa: F401
