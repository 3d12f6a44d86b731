"""Few-shot evaluation of frozen features: N-way K-shot episodes.

Each episode draws N classes, K labeled "support" images per class and a disjoint set
of "query" images per class; a classifier fitted on the support features labels the
queries. The accuracy over many seeded episodes is reported with a 95% confidence
interval (1.96 standard errors), as in the few-shot literature (e.g. Tian et al. 2020,
whose simple baseline is logistic regression on normalised frozen features).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kssl import defaults

CLASSIFIERS = ("nearest_mean", "logistic")


def parse_few_shot(text: str) -> list[tuple[int, int]]:
    """`"5x1,5x5"` -> `[(5, 1), (5, 5)]` (ways x shots), or a `ValueError` naming the part.

    Examples:
        >>> parse_few_shot("5x1, 10x5")
        [(5, 1), (10, 5)]
    """
    settings = []
    for part in str(text).split(","):
        ways, _, shots = part.strip().lower().partition("x")
        if not (ways.isdigit() and shots.isdigit()) or int(ways) < 2 or int(shots) < 1:
            raise ValueError(
                f"few-shot settings are WAYSxSHOTS with at least 2 ways and 1 shot, like 5x1,5x5. Received: {part!r}"
            )
        settings.append((int(ways), int(shots)))
    return settings


@dataclasses.dataclass
class Episode:
    classes: np.ndarray  # the N classes, in episode order (episode label i = classes[i])
    support: np.ndarray  # indices, N*K
    support_labels: np.ndarray
    query: np.ndarray  # indices, N*Q
    query_labels: np.ndarray


def few_shot_episodes(labels, ways: int, shots: int, queries: int = 15, episodes: int = defaults.FEW_SHOT_EPISODES,
                       seed: int = defaults.SEED):  # fmt: skip
    """Yields `episodes` seeded, balanced episodes with disjoint support and query sets.

    Classes with fewer than `shots + 1` images are never drawn; the number of queries
    per class is at most what the smallest drawn-from class has left after the shots.

    Raises:
        ValueError: fewer than `ways` classes have more than `shots` images.
    """
    labels = np.asarray(labels)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    eligible = sorted(c for c, members in by_class.items() if len(members) > shots)
    if len(eligible) < ways:
        counts = ", ".join(f"{c}: {len(m)}" for c, m in sorted(by_class.items()))
        raise ValueError(
            f"{ways}-way {shots}-shot needs {ways} classes with more than {shots} images each (one left to query); "
            f"{len(eligible)} have that (images per class: {counts}). Ask for fewer shots or ways."
        )
    queries = min(queries, min(len(by_class[c]) for c in eligible) - shots)
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        classes = rng.choice(eligible, size=ways, replace=False)
        support, query = [], []
        for members in (by_class[c] for c in classes):
            chosen = rng.choice(members, size=shots + queries, replace=False)
            support.append(chosen[:shots])
            query.append(chosen[shots:])
        yield Episode(
            classes=classes,
            support=np.concatenate(support),
            support_labels=np.repeat(np.arange(ways), shots),
            query=np.concatenate(query),
            query_labels=np.repeat(np.arange(ways), queries),
        )


def _normalize(features):
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def _predict(classifier, support, support_labels, query, ways):
    if classifier == "nearest_mean":
        means = _normalize(np.stack([support[support_labels == i].mean(0) for i in range(ways)]))
        return np.argmax(query @ means.T, axis=1)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000).fit(support, support_labels).predict(query)


def few_shot_accuracy(
    features,
    labels,
    ways: int = 5,
    shots: int = 1,
    queries: int = 15,
    episodes: int = defaults.FEW_SHOT_EPISODES,
    classifier: str = "nearest_mean",
    seed: int = defaults.SEED,
) -> dict:
    """Mean N-way K-shot accuracy of frozen `features` and its 95% confidence interval.

    Args:
        features: `(N, D)` frozen features; they are L2-normalised here.
        labels: `(N,)` integer labels.
        classifier: `"nearest_mean"` (cosine to each class's mean support feature) or
            `"logistic"` (scikit-learn logistic regression on the support features).

    Returns:
        `{"ways", "shots", "classifier", "episodes", "queries", "accuracy", "ci95"}`.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> labels = np.repeat(np.arange(6), 20)
        >>> features = np.eye(6)[labels] + 0.1 * rng.normal(size=(120, 6))
        >>> result = few_shot_accuracy(features, labels, ways=5, shots=1, episodes=100)
        >>> result["accuracy"] > 0.95, result["ci95"] < 0.02
        (True, True)
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}. Received: classifier={classifier!r}")
    features = _normalize(np.asarray(features, np.float32))
    accuracies = []
    used_queries = None
    for episode in few_shot_episodes(labels, ways, shots, queries, episodes, seed):
        predicted = _predict(
            classifier, features[episode.support], episode.support_labels, features[episode.query], ways
        )
        accuracies.append(np.mean(predicted == episode.query_labels))
        used_queries = len(episode.query) // ways
    accuracies = np.asarray(accuracies)
    return {
        "ways": ways,
        "shots": shots,
        "classifier": classifier,
        "episodes": episodes,
        "queries": used_queries,
        "accuracy": float(accuracies.mean()),
        "ci95": float(1.96 * accuracies.std(ddof=1) / np.sqrt(len(accuracies))) if len(accuracies) > 1 else 0.0,
    }
