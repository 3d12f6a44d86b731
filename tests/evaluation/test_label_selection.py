"""Which images to label: TypiClust, k-center greedy and random picks against
straightforward NumPy re-implementations, cluster coverage, and clear errors."""

import numpy as np
import pytest

from kssl.errors import InputError
from kssl.evaluation.label_selection import (
    MIN_CLUSTER_SIZE,
    k_center_greedy,
    random_picks,
    select_for_labeling,
    typicality,
    typiclust,
    typiclust_picks,
)


def reference_typicality(features, k):
    distances = np.sqrt(((features[:, None] - features[None]) ** 2).sum(-1))
    nearest = np.sort(distances, axis=1)[:, 1 : k + 1]  # column 0: the row itself
    return 1 / (nearest.mean(axis=1) + 1e-5)


def reference_typiclust(features, clusters, budget, labeled):
    """Hacohen et al. 2022's selection loop, written out plainly."""
    sizes = {c: int((clusters == c).sum()) for c in set(clusters.tolist())}
    taken = set(int(i) for i in labeled)
    counts = {c: sum(int(clusters[i]) == c for i in taken) for c in sizes}
    picks = []
    for _ in range(budget):
        open_ = [c for c in sizes if any(int(clusters[i]) == c and i not in taken for i in range(len(features)))]
        eligible = [c for c in open_ if sizes[c] > MIN_CLUSTER_SIZE] or open_
        cluster = sorted(eligible, key=lambda c: (counts[c], -sizes[c], c))[0]
        members = [i for i in range(len(features)) if int(clusters[i]) == cluster and i not in taken]
        scores = reference_typicality(features[members], min(20, len(members) // 2)) if len(members) > 1 else [1]
        pick = members[int(np.argmax(scores))]
        picks.append(pick)
        taken.add(pick)
        counts[cluster] += 1
    return picks


@pytest.mark.parametrize("k", [1, 5, 20])
def test_typicality_is_the_inverse_mean_distance_to_the_nearest_neighbours(rng, k):
    features = rng.normal(size=(40, 6))
    np.testing.assert_allclose(typicality(features, k), reference_typicality(features, k), rtol=1e-10)
    assert typicality(features[:1]).tolist() == [1.0]


@pytest.mark.parametrize("labeled", [[], [0, 5, 17]])
def test_typiclust_picks_equal_the_papers_loop_written_out(rng, labeled):
    features = rng.normal(size=(90, 4))
    clusters = rng.integers(0, 7, size=90)
    clusters[:3] = 7  # a cluster of 3: an outlier, picked from only when nothing else is left
    expected = reference_typiclust(features, clusters, 10, labeled)
    assert typiclust_picks(features, clusters, 10, labeled).tolist() == expected
    everything = typiclust_picks(features, clusters, 90 - len(labeled), labeled)
    assert sorted(everything.tolist()) == sorted(set(range(90)) - set(labeled))  # each once, the outliers last
    outliers = {0, 1, 2} - set(labeled)
    assert set(everything[-len(outliers) :].tolist()) == outliers


def test_on_well_separated_clusters_typiclust_covers_every_one_with_its_most_typical_image(rng):
    centres = rng.normal(size=(6, 8)) * 20
    sizes = [12, 30, 8, 25, 40, 15]
    features = np.concatenate([c + rng.normal(size=(n, 8)) for c, n in zip(centres, sizes)])
    owner = np.repeat(np.arange(6), sizes)
    picks = typiclust(features, 6, seed=1)
    assert sorted(owner[picks].tolist()) == list(range(6))
    for pick in picks:  # the most typical member of its cluster
        members = np.flatnonzero(owner == owner[pick])
        assert pick == members[np.argmax(reference_typicality(features[members], min(20, len(members) // 2)))]
    # Extending a selection: the groups without a label are covered first (k-means now
    # makes 7 clusters, one more than the groups, so the third pick may split a group).
    more = typiclust(features, 3, labeled=picks[:4], seed=1)
    assert set(owner[picks[4:]].tolist()) <= set(owner[more].tolist()) and not set(more) & set(picks[:4])


def test_k_center_greedy_picks_the_farthest_image_each_time(rng):
    features = rng.normal(size=(50, 5))
    distances = np.sqrt(((features[:, None] - features[None]) ** 2).sum(-1))
    chosen = [3, 11]
    for _ in range(6):
        chosen.append(int(np.argmax(distances[:, chosen].min(axis=1))))
    assert k_center_greedy(features, 6, labeled=[3, 11]).tolist() == chosen[2:]
    first = k_center_greedy(features, 2, seed=4)
    assert (
        first[1] == np.argmax(distances[first[0]]) and first.tolist() == k_center_greedy(features, 2, seed=4).tolist()
    )


def test_random_picks_are_seeded_and_never_labeled_ones(rng):
    features = rng.normal(size=(30, 2))
    picks = random_picks(features, 10, labeled=range(15), seed=3)
    assert len(set(picks.tolist())) == 10 and picks.min() >= 15
    assert picks.tolist() == random_picks(features, 10, labeled=range(15), seed=3).tolist()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"budget": 0}, "A budget of 0 images cannot be picked from 20"),
        ({"budget": 19, "labeled": [0, 1]}, "A budget of 19 images cannot be picked from 18 unlabeled images"),
        ({"budget": 2, "method": "entropy"}, "Unknown selection method 'entropy'"),
        ({"budget": 2, "labeled": [20]}, "Labeled indices must lie in [0, 20)"),
    ],
)
def test_bad_requests_name_the_value(kwargs, message):
    from kssl.data.sources import load_digits
    from kssl.encoders import conv4

    with pytest.raises(InputError) as error:
        select_for_labeling(conv4(width=0.125, image_size=8), load_digits(image_size=8).subset(range(20)), **kwargs)
    assert message in str(error.value)
