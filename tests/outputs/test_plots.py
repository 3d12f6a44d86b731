"""The plots a run leaves, read back as images: what they draw is where it should be."""

import numpy as np
from PIL import Image

from kssl.outputs import plots


def test_label_efficiency_draws_a_line_per_way_and_survives_missing_scratch_and_single_budgets(tmp_path):
    path = plots.plot_label_efficiency([10], {"full": ([(0.5, [0.4, 0.6])], None)}, tmp_path / "one.png")
    assert Image.open(path).format == "PNG" and not list(tmp_path.glob(".*"))  # written atomically
    many = plots.plot_label_efficiency([10, 100, 1000], {"full": ([0.3, 0.6, 0.8], [0.2, 0.4, 0.7]),
                                                         "lora": ([0.4, 0.5, 0.6], None, "LoRA rank 4")},
                                       tmp_path / "many.png")  # fmt: skip
    assert Image.open(many).size[0] > Image.open(path).size[0] // 2


def test_an_embedding_map_colours_each_class_apart(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.eye(3, 16) * 10
    features = np.concatenate([centre + rng.normal(size=(40, 16)) for centre in centres])
    labels = np.repeat(np.arange(3), 40)
    image = np.asarray(Image.open(plots.plot_embedding_map(features, labels, ["a", "b", "c"], tmp_path / "map.png")))
    colours = {tuple(c) for c in image[..., :3].reshape(-1, 3) if len(set(c)) > 1}  # not grey: the points
    assert len(colours) >= 3


def test_a_contact_sheet_shows_a_grey_tile_for_a_file_that_is_gone(tmp_path):
    red = tmp_path / "red.png"
    Image.new("RGB", (30, 20), (255, 0, 0)).save(red)
    sheet = np.asarray(Image.open(plots.plot_contact_sheet([red, tmp_path / "gone.png"], tmp_path / "sheet.png",
                                                            "picks", columns=2)))[..., :3]  # fmt: skip
    left, right = sheet[:, : sheet.shape[1] // 2], sheet[:, sheet.shape[1] // 2 :]
    assert ((left[..., 0] > 200) & (left[..., 1] < 60)).sum() > 500  # the red image
    assert ((right[..., 0] > 200) & (right[..., 1] < 60)).sum() == 0  # no red: a grey tile instead
