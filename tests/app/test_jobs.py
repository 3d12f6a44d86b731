"""The jobs behind the commands: a classifier evaluated on a folder labels it by class name."""

import pytest
from helpers import write_folder

from kssl.app.data import load_train_test


def test_a_classifier_is_evaluated_by_class_name_and_refuses_classes_it_never_saw(tmp_path):
    from helpers import tiny_encoder

    from kssl.app.jobs import labeled_as_classifier
    from kssl.errors import InputError
    from kssl.models import Classifier

    classifier = Classifier(tiny_encoder(8), 3, class_names=["cat", "dog", "fox"])
    write_folder(tmp_path / "two", classes=("cat", "fox"), per_class=5)
    _, test = load_train_test(str(tmp_path / "two"), image_size=8)  # its own ids: cat 0, fox 1
    relabeled = labeled_as_classifier(classifier, test, "two")
    assert relabeled.class_names == ["cat", "dog", "fox"] and sorted(set(relabeled.labels.tolist())) == [0, 2]
    write_folder(tmp_path / "other", classes=("cat", "owl"), per_class=5)
    _, other = load_train_test(str(tmp_path / "other"), image_size=8)
    with pytest.raises(InputError, match="class\\(es\\) 'owl' that the classifier was not trained on"):
        labeled_as_classifier(classifier, other, "other")
    unnamed = Classifier(tiny_encoder(8), 4)
    with pytest.raises(InputError, match="predicts 4 classes and 'other' has 2"):
        labeled_as_classifier(unnamed, other, "other")
