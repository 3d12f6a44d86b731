"""NumPy re-derivations of losses from their papers, shared by the tests of a loss and of
the method that uses it."""

import numpy as np


def numpy_softmax(logits, temperature=1.0):
    z = np.asarray(logits, np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def numpy_freematch_mask(weak, time_p, p_model):
    """Wang et al. 2023, eq. 6-8: tau_t(c) = MaxNorm(p_t)(c) * tau_t; keep max(q) >= tau_t(argmax q)."""
    q = numpy_softmax(weak)
    thresholds = time_p * np.asarray(p_model, np.float64) / np.max(p_model)
    return (q.max(axis=1) >= thresholds[q.argmax(axis=1)]).astype(np.float64)


def numpy_freematch_fairness(mean_probability, strong_histogram, p_model, label_hist):
    """Eq. 9-10 as USB computes it: sum_c SumNorm(p_t / h_t) log SumNorm(p_bar / h_bar), 1/0 read as 0."""

    def sum_norm(values, histogram):
        histogram = np.asarray(histogram, np.float64)
        inverse = np.where(histogram > 0, 1 / np.where(histogram > 0, histogram, 1), 0.0)
        scaled = np.asarray(values, np.float64) * inverse
        return scaled / scaled.sum()

    return np.sum(sum_norm(p_model, label_hist) * np.log(sum_norm(mean_probability, strong_histogram) + 1e-12))


def numpy_flexmatch_thresholds(selected, classes, threshold):
    """Zhang et al. 2021, eq. 6-7 with USB's warm-up: sigma(c) = #{n: selected_n = c},
    beta(c) = sigma(c) / max(max_c sigma, #{n: selected_n = -1}), T(c) = tau * beta / (2 - beta)."""
    selected = np.asarray(selected)
    sigma = np.array([(selected == c).sum() for c in range(classes)], np.float64)
    beta = sigma / max(sigma.max(), (selected == -1).sum())
    return threshold * beta / (2 - beta)


def numpy_weighted_knn_accuracy(train, train_labels, test, test_labels, k, temperature=0.1):
    """InstDisc's weighted kNN (Wu et al. 2018, section 3.4): the k most cosine-similar
    training rows vote for their class with weight exp(similarity / temperature)."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    right = 0
    for row, label in zip(test, test_labels):
        similarity = train @ row
        nearest = np.argsort(-similarity)[:k]
        votes = np.zeros(int(max(train_labels)) + 1)
        np.add.at(votes, np.asarray(train_labels)[nearest], np.exp(similarity[nearest] / temperature))
        right += int(votes.argmax() == label)
    return right / len(test_labels)
