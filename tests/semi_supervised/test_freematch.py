"""FreeMatch's step against NumPy: the thresholds' EMAs move first, then the mask, the
pseudo-labels' cross-entropy and the fairness term follow from them (Wang et al. 2023)."""

import keras
import numpy as np
from helpers import tiny_encoder
from numpy_references import numpy_freematch_fairness, numpy_freematch_mask, numpy_softmax

from kssl.models import Classifier
from kssl.semi_supervised.freematch import FreeMatch


def test_one_forward_pass_matches_numpy_and_the_thresholds_move_from_one_over_c(rng):
    classifier = Classifier(tiny_encoder(8), 4, mode="full")
    method = FreeMatch(ratio=2, momentum=0.5, fairness_weight=0.3)
    state = method.state(4)
    assert np.allclose(state.time_p.numpy(), 0.25) and np.allclose(state.p_model.numpy(), 0.25)  # 1 / C
    images, weak, strong = (rng.random((n, 8, 8, 3)).astype("float32") for n in (3, 6, 6))
    logits = classifier(np.concatenate([images, weak, strong]), training=True).numpy()  # batch norm: batch statistics
    weak_logits, strong_logits = logits[3:9], logits[9:]

    labeled, terms, logged, share = method.logits_and_terms(classifier, images, [weak, strong])

    q = numpy_softmax(weak_logits)
    time_p = 0.5 * 0.25 + 0.5 * q.max(axis=1).mean()
    p_model = 0.5 * 0.25 + 0.5 * q.mean(axis=0)
    label_hist = 0.5 * 0.25 + 0.5 * np.bincount(q.argmax(axis=1), minlength=4) / 6
    np.testing.assert_allclose(state.time_p.numpy(), time_p, rtol=1e-5)
    np.testing.assert_allclose(state.p_model.numpy(), p_model, rtol=1e-5)
    np.testing.assert_allclose(state.label_hist.numpy(), label_hist, rtol=1e-5)
    keep = numpy_freematch_mask(weak_logits, time_p, p_model)  # with the moved thresholds
    np.testing.assert_array_equal(logged["mask_rate"], keep)
    p = numpy_softmax(strong_logits)
    np.testing.assert_allclose(terms, keep * -np.log(p[np.arange(6), q.argmax(axis=1)]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(labeled, logits[:3], rtol=1e-5, atol=1e-6)
    if keep.sum():
        histogram = np.bincount(p[keep > 0].argmax(axis=1), minlength=4) / keep.sum()
        fairness = numpy_freematch_fairness(p[keep > 0].mean(axis=0), histogram, p_model, label_hist)
        np.testing.assert_allclose(share, 0.3 * fairness, rtol=1e-4)
    else:
        assert float(share) == 0.0


def test_the_ema_rate_follows_the_runs_length_unless_given(monkeypatch):
    from helpers import digits

    from kssl.semi_supervised import freematch
    from kssl.training import finetune

    assert FreeMatch(momentum=0.99).effective_momentum == 0.99
    assert FreeMatch().effective_momentum == 0.999  # the length unknown: the paper's
    method = FreeMatch()
    method.set_run_length(400)
    assert method.effective_momentum == 0.95 and method.state(3).momentum == 0.95  # settles within 5% of the run
    assert FreeMatch(momentum=0.5).state(3).momentum == 0.5

    built, original = [], freematch.SelfAdaptiveThresholds.__init__

    def recording(self, num_classes, momentum=0.999, **kwargs):
        built.append(momentum)
        original(self, num_classes, momentum, **kwargs)

    monkeypatch.setattr(freematch.SelfAdaptiveThresholds, "__init__", recording)
    images = digits(image_size=8)
    options = {"semi_supervised": "freematch", "semi_supervised_options": {"ratio": 2}, "unlabeled_passes": 80}
    finetune(tiny_encoder(8), images.subset(range(20)), unlabeled_set=images.subset(range(100)), batch_size=10,
             verbose=0, callbacks=[StopAtOnce()], **options)  # fmt: skip
    assert built == [freematch.run_momentum(400)] == [0.95]  # 80 passes of 100 images, 20 a step


class StopAtOnce(keras.callbacks.Callback):  # the thresholds are built before the first step: one is enough
    def on_train_batch_end(self, batch, logs=None):
        self.model.stop_training = True
