"""Which images to label first, chosen on a pretrained encoder's features.

With a budget of a few labels per class, which images get labeled matters as much as
how they are used: random picks can miss a class or spend labels on outliers. Three ways
to pick, all on L2-normalised features of the evaluation view (as kNN uses them):

- `typiclust` (Hacohen et al. 2022, "Active Learning on a Budget"): k-means into as many
  clusters as there will be labels; then, one pick at a time, the cluster holding the
  fewest labeled images (the largest first among equals; clusters of 5 images or fewer
  are outliers and wait until no other is left) gives its most typical image:
  typicality = 1 / (mean distance to its `min(20, size // 2)` nearest neighbours in the
  cluster + 1e-5). The paper's choice for the smallest budgets.
- `kcenter`: k-center greedy (the coreset of Sener & Savarese 2018): each pick is the
  image farthest from every image labeled so far.
- `random`: a seeded uniform draw, the baseline.

Each takes the indices labeled already (`labeled=`), so a selection can be extended.

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centres = np.eye(3) * 10
    >>> features = np.concatenate([c + rng.normal(size=(30, 3)) for c in centres])
    >>> picks = typiclust(features, 3, seed=0)
    >>> sorted(int(p) // 30 for p in picks)  # one typical image of each cluster
    [0, 1, 2]
"""

from __future__ import annotations

import numpy as np

from kssl import defaults
from kssl.errors import DataError, InputError

# The paper's constants (TypiClust's code: MIN_CLUSTER_SIZE, K_NN, MAX_NUM_CLUSTERS).
MIN_CLUSTER_SIZE = 5
NEIGHBOURS = 20
MAX_CLUSTERS = 500


def typicality(features: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """`1 / (mean Euclidean distance to the k nearest other rows + 1e-5)` of each row,
    with `k = min(neighbours, N - 1)`; all ones for a single row."""
    from sklearn.neighbors import NearestNeighbors

    k = min(int(neighbours), len(features) - 1)
    if k < 1:
        return np.ones(len(features))
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    return 1.0 / (distances[:, 1:].mean(axis=1) + 1e-5)  # column 0: the row itself, at 0


def typiclust_picks(features, clusters, budget: int, labeled=()) -> np.ndarray:
    """TypiClust's picks given each row's cluster id (`typiclust` clusters with k-means)."""
    features, clusters = np.asarray(features, np.float64), np.asarray(clusters)
    count = int(clusters.max()) + 1
    sizes = np.bincount(clusters, minlength=count)
    labeled_in = np.bincount(clusters[np.asarray(labeled, np.int64)], minlength=count)
    available = np.ones(len(features), bool)
    available[np.asarray(labeled, np.int64)] = False
    picks = []
    for _ in range(budget):
        open_clusters = np.bincount(clusters[available], minlength=count) > 0
        eligible = open_clusters & (sizes > MIN_CLUSTER_SIZE)
        if not eligible.any():  # only outlier clusters are left
            eligible = open_clusters
        candidates = np.flatnonzero(eligible)
        # Fewest labeled first, then the largest, then the lowest id (deterministic).
        cluster = candidates[np.lexsort((candidates, -sizes[candidates], labeled_in[candidates]))[0]]
        members = np.flatnonzero((clusters == cluster) & available)
        pick = members[np.argmax(typicality(features[members], min(NEIGHBOURS, len(members) // 2)))]
        picks.append(pick)
        available[pick] = False
        labeled_in[cluster] += 1
    return np.asarray(picks, np.int64)


def typiclust(features, budget: int, labeled=(), seed: int = 0) -> np.ndarray:
    """TypiClust: `budget` indices of `features` rows to label (see the module docstring)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    features = np.asarray(features, np.float64)
    count = min(len(labeled) + budget, MAX_CLUSTERS, len(features))
    # The paper's choice: k-means for up to 50 clusters, mini-batch k-means above.
    kmeans = (
        KMeans(count, n_init=10, random_state=seed)
        if count <= 50
        else MiniBatchKMeans(count, n_init=3, batch_size=4096, random_state=seed)
    )
    return typiclust_picks(features, kmeans.fit_predict(features), budget, labeled)


def k_center_greedy(features, budget: int, labeled=(), seed: int = 0) -> np.ndarray:
    """Each pick the row farthest (Euclidean) from all labeled and picked rows; the first
    a seeded random row when none is labeled."""
    features = np.asarray(features, np.float64)
    nearest = np.full(len(features), np.inf)
    for index in labeled:
        nearest = np.minimum(nearest, np.linalg.norm(features - features[index], axis=1))
    picks = []
    for _ in range(budget):
        if np.isinf(nearest).all():
            pick = int(np.random.default_rng(seed).integers(len(features)))
        else:
            pick = int(np.argmax(nearest))
        picks.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(features - features[pick], axis=1))
    return np.asarray(picks, np.int64)


def random_picks(features, budget: int, labeled=(), seed: int = 0) -> np.ndarray:
    """A seeded uniform draw of `budget` rows not labeled yet."""
    pool = np.setdiff1d(np.arange(len(features)), np.asarray(labeled, np.int64))
    return np.random.default_rng(seed).choice(pool, size=budget, replace=False).astype(np.int64)


METHODS = {"typiclust": typiclust, "kcenter": k_center_greedy, "random": random_picks}


def picked_subset(encoder, image_set, labels, method: str, seed: int = 0):
    """The labeled subset a person would label if `method` chose it: as many images as
    `kssl.data.subsets.label_subset(image_set, labels)` takes (a count per class or a
    fraction), picked by `select_for_labeling` on `encoder`'s features, their labels then
    revealed. On a labeled folder, it shows what choosing the images gains over a random
    draw (`kssl run --select typiclust`).

    Examples:
        >>> import kssl
        >>> images = kssl.load_digits(image_size=8).subset(range(200))
        >>> subset = picked_subset(kssl.conv4(width=0.125, image_size=8), images, 2, "kcenter")
        >>> len(subset), subset.num_classes
        (20, 10)
    """
    from kssl.data.subsets import label_subset

    count = len(label_subset(image_set, labels, seed=seed))
    picks = select_for_labeling(encoder, image_set, count, method, seed=seed)
    return image_set.subset(picks)


def select_for_labeling(encoder, images, budget: int, method: str = defaults.SELECTION_METHOD, labeled=(),
                        seed: int = defaults.SEED,
                        verbose: int = 0, progress: bool = False):  # fmt: skip
    """Indices of `images` (an `ImageSet`, a streamed source or a uint8 array) to label
    first: `budget` of them by `method` (`typiclust`, `kcenter` or `random`) on the
    encoder's L2-normalised features, none of `labeled` (indices labeled already).
    A streamed file that cannot be read is never picked (its row has no features).
    `verbose=1` shows Keras' progress bar while the features are computed, `progress=True`
    a bar of the images done.

    Examples:
        >>> import kssl
        >>> images = kssl.load_digits(image_size=8).subset(range(60))
        >>> picks = select_for_labeling(kssl.conv4(width=0.125, image_size=8), images, 5, labeled=[0, 1])
        >>> len(set(picks.tolist())), bool(set(picks.tolist()) & {0, 1})
        (5, False)
    """
    from kssl.evaluation.features import features_by_row, unread_message
    from kssl.evaluation.similarity import l2_normalized

    if method not in METHODS:
        raise InputError(f"Unknown selection method {method!r}: use one of {', '.join(METHODS)}.")
    labeled = np.unique(np.asarray(labeled, np.int64))
    count = len(images)
    if labeled.size and (labeled.min() < 0 or labeled.max() >= count):
        raise InputError(f"Labeled indices must lie in [0, {count}); received {labeled.min()}..{labeled.max()}.")
    _check_budget(budget, count - labeled.size, "unlabeled images")
    features, rows = features_by_row(encoder, images, verbose=verbose, progress=progress)
    # Features are rows of the images that were read: picks are made among them and named by
    # their rows, so an unreadable file is never picked nor shifts a pick to its neighbour.
    if not len(rows):
        raise DataError(
            f"None of the {count:,} images could be read ({unread_message(images, rows)}): nothing to pick."
        )
    read_labeled = np.flatnonzero(np.isin(rows, labeled))
    if len(rows) < count:
        _check_budget(budget, len(rows) - read_labeled.size,
                      f"readable unlabeled images ({unread_message(images, rows)})")  # fmt: skip
    return rows[METHODS[method](l2_normalized(features), int(budget), labeled=read_labeled, seed=seed)]


def _check_budget(budget, available: int, what: str) -> None:
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or not 1 <= budget <= available:
        raise InputError(
            f"A budget of {budget!r} images cannot be picked from {available} {what}: ask for 1 to {available}."
        )
