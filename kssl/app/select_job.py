"""`kssl select`: which images of a folder a person should label first.

Writes a CSV of the picks (`rank,path`, the first pick first) and, beside it, a contact
sheet PNG of them (`picks.csv` -> `picks.png`). Both are written atomically, and an
existing file is replaced only with `--overwrite`.
"""

from __future__ import annotations

import csv
import io
import pathlib

from kssl import defaults
from kssl.app.staging import check_output_file
from kssl.data.files import list_images
from kssl.encoders.loading import encoder_file, load_encoder
from kssl.errors import InputError, MissingInputError
from kssl.evaluation.label_selection import select_for_labeling
from kssl.outputs.atomic import atomic_file
from kssl.outputs.plots import plot_contact_sheet


def select_job(pretrained, data, budget: int, out, method: str = defaults.SELECTION_METHOD, labeled=None,
               seed: int = defaults.SEED,
               overwrite: bool = False, progress: bool = True, image_size: int | None = None) -> list[str]:  # fmt: skip
    """Picks `budget` images of the folder `data` (any layout, no labels needed) by `method`
    on the encoder of `pretrained`; writes `out` (CSV) and its contact sheet; returns the
    picked paths. `labeled` is a CSV of an earlier selection, extended here."""

    out = pathlib.Path(out).expanduser()
    sheet = out.with_suffix(".png")
    data = pathlib.Path(data).expanduser()
    _check_out(out, sheet, data, overwrite)
    encoder_path = encoder_file(pretrained)  # what can be checked is, before the folder is listed
    if labeled is not None and not pathlib.Path(labeled).expanduser().is_file():
        raise MissingInputError(f"No CSV at {str(labeled)!r}: pass the --out of an earlier `kssl select`.")
    files = list_images(data, skip_bad_images=True, progress=progress)
    chosen = _read_labeled(labeled, files.paths) if labeled else []
    encoder = load_encoder(encoder_path, image_size)
    picks = select_for_labeling(encoder, files, budget, method, labeled=chosen, seed=seed, progress=progress)
    paths = [str(files.paths[i]) for i in picks]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "path"])
    writer.writerows([rank, path] for rank, path in enumerate(paths, start=1))
    # Both files or neither: each is renamed into place only once both are drawn and written.
    with atomic_file(out, suffix=".csv") as table, atomic_file(sheet, suffix=".png") as picture:
        table.write_text(buffer.getvalue())
        plot_contact_sheet(paths, picture, f"{len(paths)} images to label first ({method}, {len(files)} in the folder)")
    print(f"Wrote the {len(paths)} images to label first to {out}, and their contact sheet to {sheet}")
    return paths


def _check_out(out: pathlib.Path, sheet: pathlib.Path, data: pathlib.Path, overwrite: bool) -> None:

    if out.suffix.lower() != ".csv":
        raise InputError(f"--out {str(out)!r}: name a .csv file (its contact sheet goes beside it, as .png).")
    for path in (out, sheet):
        check_output_file(path, overwrite)
    if data.is_dir() and out.resolve().is_relative_to(data.resolve()):
        raise InputError(
            f"--out {str(out)!r} lies inside --data {str(data)!r}: its contact sheet would be listed as one of the "
            "images next time. Write it outside the folder."
        )


def _read_labeled(path, listed) -> list[int]:
    """Indices in `listed` of the `path` column of an earlier selection's CSV."""
    path = pathlib.Path(path).expanduser()
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(
            f"{str(path)!r} is not a CSV file ({error}): pass the --out of an earlier `kssl select`."
        ) from None
    if "path" not in columns:
        raise InputError(f"{str(path)!r} has no 'path' column: pass the --out of an earlier `kssl select`.")
    for line, row in enumerate(rows, start=2):
        if not row.get("path"):
            raise InputError(f"{str(path)!r}, line {line}: no path in this row. Pass the --out of an earlier "
                             "`kssl select`, or mend the row.")  # fmt: skip
    where = {str(pathlib.Path(p).resolve()): index for index, p in enumerate(listed)}
    indices = [where.get(str(pathlib.Path(row["path"]).resolve())) for row in rows]
    missing = [row["path"] for row, index in zip(rows, indices) if index is None]
    if missing:
        raise InputError(
            f"{len(missing)} file(s) of {str(path)!r} are not images of --data, e.g. {missing[0]!r}: select "
            "from the folder the earlier selection was made in."
        )
    return indices
