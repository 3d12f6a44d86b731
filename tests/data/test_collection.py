"""What every image source shares (`ImageCollection`): class counts, the training size, and
subsets that keep every per-image field aligned."""

import dataclasses

import numpy as np
import pytest

from kssl.data.collection import ImageCollection
from kssl.errors import DataError


@dataclasses.dataclass
class Shelf(ImageCollection):
    """A collection whose rows are names, as a source of files would hold paths."""

    names: np.ndarray
    labels: np.ndarray | None
    class_names: list
    source: str = "shelf"
    view_size: int | None = None

    PER_IMAGE = ("names", "labels")


def shelf(labels=(0, 1, 1, 2, 2, 2)):
    labels = None if labels is None else np.array(labels)
    return Shelf(np.array([f"img{i}" for i in range(6)]), labels, ["a", "b", "c"])


def test_class_counts_name_every_class_including_empty_ones():
    assert shelf().class_counts() == {"a": 1, "b": 2, "c": 3}
    assert shelf((2, 2, 2, 2, 2, 2)).class_counts() == {"a": 0, "b": 0, "c": 6}
    assert shelf(None).class_counts() == {} and shelf(None).num_classes == 3


def test_a_subset_keeps_every_per_image_field_aligned_and_copies_the_class_names():
    whole = shelf()
    part = whole.subset([5, 0, 3], source="picked")
    assert part.names.tolist() == ["img5", "img0", "img3"] and part.labels.tolist() == [2, 0, 2]
    assert part.source == "picked" and whole.subset([1]).source == "shelf"
    part.class_names.append("d")
    assert whole.class_names == ["a", "b", "c"]  # the subset's list is its own
    assert shelf(None).subset([1, 2]).labels is None


def test_the_training_size_is_asked_for_until_set():
    with pytest.raises(DataError, match=r"No training size is set for the images of 'shelf': use .at_size"):
        _ = shelf().image_size
    sized = shelf().at_size(96.0)
    assert sized.image_size == 96 and isinstance(sized.image_size, int) and sized.subset([0]).image_size == 96
