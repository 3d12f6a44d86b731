import numpy as np
import pytest

from kssl.evaluation.few_shot import few_shot_accuracy, few_shot_episodes, parse_few_shot


def test_episodes_are_seeded_balanced_and_disjoint():
    labels = np.repeat(np.arange(10), 30)
    episodes = list(few_shot_episodes(labels, ways=5, shots=5, queries=10, episodes=50, seed=3))
    again = list(few_shot_episodes(labels, ways=5, shots=5, queries=10, episodes=50, seed=3))
    other = list(few_shot_episodes(labels, ways=5, shots=5, queries=10, episodes=50, seed=4))
    assert all(
        np.array_equal(a.support, b.support) and np.array_equal(a.query, b.query) for a, b in zip(episodes, again)
    )
    assert any(not np.array_equal(a.support, b.support) for a, b in zip(episodes, other))
    for episode in episodes:
        assert len(set(episode.classes)) == 5
        assert not set(episode.support) & set(episode.query)
        assert np.array_equal(np.bincount(episode.support_labels), [5] * 5)
        assert np.array_equal(np.bincount(episode.query_labels), [10] * 5)
        assert np.array_equal(labels[episode.support], episode.classes[episode.support_labels])
        assert np.array_equal(labels[episode.query], episode.classes[episode.query_labels])


def test_accuracy_and_interval_against_a_direct_computation(rng):
    labels = np.repeat(np.arange(8), 12)
    features = np.eye(8)[labels] + 0.8 * rng.normal(size=(96, 8))
    result = few_shot_accuracy(features, labels, ways=5, shots=1, queries=5, episodes=600, seed=1)
    normalized = features / np.linalg.norm(features, axis=1, keepdims=True)
    accuracies = []
    for episode in few_shot_episodes(labels, 5, 1, 5, 600, seed=1):
        prototypes = normalized[episode.support]  # one shot: the mean is the support image itself
        prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
        predicted = np.argmax(normalized[episode.query] @ prototypes.T, axis=1)
        accuracies.append(np.mean(predicted == episode.query_labels))
    assert result["accuracy"] == pytest.approx(np.mean(accuracies))
    assert result["ci95"] == pytest.approx(1.96 * np.std(accuracies, ddof=1) / np.sqrt(600))
    assert 0.2 < result["accuracy"] < 1
    logistic = few_shot_accuracy(features, labels, ways=5, shots=5, queries=5, episodes=50, classifier="logistic")
    assert logistic["accuracy"] > result["accuracy"]  # five shots beat one


def test_too_many_shots_and_bad_settings_are_clear_errors():
    labels = np.repeat(np.arange(6), [3, 3, 3, 3, 3, 10])
    with pytest.raises(ValueError, match="5-way 5-shot needs 5 classes with more than 5 images"):
        next(few_shot_episodes(labels, ways=5, shots=5))
    assert parse_few_shot("5x1,5x5") == [(5, 1), (5, 5)]
    with pytest.raises(ValueError, match="'5-1'"):
        parse_few_shot("5-1")
