"""FixMatch's, FreeMatch's and SimCLRv2's distillation terms against NumPy written from the papers."""

import numpy as np
import pytest
import tensorflow as tf
from numpy_references import numpy_freematch_fairness, numpy_freematch_mask, numpy_softmax

from kssl.losses import distillation, fixmatch, freematch_fairness, freematch_mask


def numpy_fixmatch(weak, strong, threshold):
    """Sohn et al. 2020, eq. 4: l_u = 1/(mu B) sum_b 1(max(q_b) >= tau) H(q_hat_b, p_m(y | A(u_b))),
    q_b = p_m(y | alpha(u_b)), q_hat_b = argmax(q_b): here each image's term (before the mean)."""
    q = numpy_softmax(weak)
    keep = (q.max(axis=1) >= threshold).astype(np.float64)
    p = numpy_softmax(strong)
    cross_entropy = -np.log(p[np.arange(len(p)), q.argmax(axis=1)])
    return keep * cross_entropy, keep


def numpy_distillation(student, teacher, temperature):
    """Chen et al. 2020b, eq. 3: -sum_y P^T(y | x_i; tau) log P^S(y | x_i; tau)."""
    return -np.sum(numpy_softmax(teacher, temperature) * np.log(numpy_softmax(student, temperature)), axis=1)


@pytest.mark.parametrize("n, classes, threshold", [(1, 2, 0.95), (16, 10, 0.5), (40, 5, 0.7)])
def test_fixmatch_matches_numpy_and_its_mask_keeps_exactly_the_confident_pseudo_labels(rng, n, classes, threshold):
    weak = (rng.normal(size=(n, classes)) * 3).astype("float32")
    strong = rng.normal(size=(n, classes)).astype("float32")
    terms, mask = fixmatch(weak, strong, threshold)
    expected_terms, expected_mask = numpy_fixmatch(weak, strong, threshold)
    np.testing.assert_array_equal(mask.numpy(), expected_mask)
    np.testing.assert_allclose(terms.numpy(), expected_terms, rtol=1e-5, atol=1e-6)


def test_fixmatch_keeps_a_confidence_of_exactly_the_threshold_and_none_below():
    # Two classes: softmax([log 3, 0]) = [0.75, 0.25]; its confidence is 0.75.
    weak = np.array([[np.log(3.0), 0.0]] * 2, "float32")
    _, at = fixmatch(weak, np.zeros((2, 2), "float32"), threshold=float(tf.nn.softmax(weak)[0, 0]))
    _, above = fixmatch(weak, np.zeros((2, 2), "float32"), threshold=0.76)
    assert at.numpy().tolist() == [1.0, 1.0] and above.numpy().tolist() == [0.0, 0.0]


def test_fixmatch_sends_no_gradient_through_the_weak_view(rng):
    weak = tf.Variable(rng.normal(size=(4, 3)).astype("float32") * 5)
    strong = tf.Variable(rng.normal(size=(4, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        terms, _ = fixmatch(weak, strong, 0.0)
        loss = tf.reduce_mean(terms)
    weak_gradient, strong_gradient = tape.gradient(loss, [weak, strong])
    assert weak_gradient is None and np.abs(strong_gradient.numpy()).sum() > 0


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_distillation_matches_numpy_and_sends_no_gradient_to_the_teacher(rng, temperature):
    student = tf.Variable(rng.normal(size=(12, 7)).astype("float32"))
    teacher = tf.Variable(rng.normal(size=(12, 7)).astype("float32"))
    with tf.GradientTape() as tape:
        terms = distillation(student, teacher, temperature)
        loss = tf.reduce_mean(terms)
    np.testing.assert_allclose(
        terms.numpy(), numpy_distillation(student.numpy(), teacher.numpy(), temperature), rtol=1e-5
    )
    student_gradient, teacher_gradient = tape.gradient(loss, [student, teacher])
    assert teacher_gradient is None and np.abs(student_gradient.numpy()).sum() > 0
    with pytest.raises(ValueError, match="temperature"):
        distillation(student, teacher, 0.0)


@pytest.mark.parametrize("n, classes", [(1, 2), (16, 10), (40, 5)])
def test_freematch_mask_and_fairness_match_numpy(rng, n, classes):
    weak = rng.normal(size=(n, classes)).astype("float32") * 3
    p_model = rng.dirichlet(np.ones(classes)).astype("float32")
    time_p = float(rng.uniform(0.2, 0.9))
    np.testing.assert_array_equal(freematch_mask(weak, time_p, p_model), numpy_freematch_mask(weak, time_p, p_model))
    mean = rng.dirichlet(np.ones(classes)).astype("float32")
    histogram = rng.dirichlet(np.ones(classes)).astype("float32")
    histogram[0] = 0.0  # a class no kept image predicts
    label_hist = rng.dirichlet(np.ones(classes)).astype("float32")
    expected = numpy_freematch_fairness(mean, histogram, p_model, label_hist)
    np.testing.assert_allclose(freematch_fairness(mean, histogram, p_model, label_hist), expected, rtol=1e-5)
