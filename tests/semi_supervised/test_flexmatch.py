"""FlexMatch's step against NumPy: class-wise thresholds from the confident predictions so
far, the mask and cross-entropy they give, then this step's confident predictions recorded
(Zhang et al. 2021)."""

import numpy as np
import pytest
from helpers import tiny_encoder
from numpy_references import numpy_flexmatch_thresholds, numpy_softmax

from kssl.losses import flexmatch_thresholds
from kssl.models import Classifier
from kssl.semi_supervised.base import SemiSupervisedTraining
from kssl.semi_supervised.flexmatch import FlexMatch


@pytest.mark.parametrize("pool, classes", [(10, 3), (200, 10)])
def test_the_thresholds_match_numpy(rng, pool, classes):
    selected = rng.integers(-1, classes, size=pool)
    expected = numpy_flexmatch_thresholds(selected, classes, 0.95)
    np.testing.assert_allclose(flexmatch_thresholds(selected, classes, 0.95), expected, rtol=1e-6)
    np.testing.assert_array_equal(flexmatch_thresholds(np.full(pool, -1), classes), np.zeros(classes))  # warm-up


def test_one_forward_pass_matches_numpy_and_records_the_confident_predictions(rng):
    classifier = Classifier(tiny_encoder(8), 4, mode="full")
    method = FlexMatch(ratio=2, threshold=0.3)
    state = method.state(4, unlabeled_images=12)
    before = np.array([0, 0, 0, 1, 2, -1, -1, -1, -1, -1, 3, 3])
    state.selected.assign(before)
    rows = np.array([5, 0, 7, 11, 2, 9])
    images, weak, strong = (rng.random((n, 8, 8, 3)).astype("float32") for n in (3, 6, 6))
    logits = classifier(np.concatenate([images, weak, strong]), training=True).numpy()

    labeled, terms, logged = method.logits_and_terms(classifier, images, [weak, strong], rows=rows)

    q = numpy_softmax(logits[3:9])
    thresholds = numpy_flexmatch_thresholds(before, 4, 0.3)  # from the state before the step
    keep = (q.max(axis=1) >= thresholds[q.argmax(axis=1)]).astype(float)
    np.testing.assert_array_equal(logged["mask_rate"], keep)
    p = numpy_softmax(logits[9:])
    np.testing.assert_allclose(terms, keep * -np.log(p[np.arange(6), q.argmax(axis=1)]), rtol=1e-4, atol=1e-6)
    after = before.copy()
    confident = q.max(axis=1) >= 0.3
    after[rows[confident]] = q.argmax(axis=1)[confident]
    np.testing.assert_array_equal(state.selected.numpy(), after)
    np.testing.assert_allclose(labeled, logits[:3], rtol=1e-5, atol=1e-6)


def test_the_training_model_needs_the_pool_size():
    classifier = Classifier(tiny_encoder(8), 4, mode="full")
    with pytest.raises(ValueError, match="pass unlabeled_images"):
        SemiSupervisedTraining(classifier, FlexMatch())
