"""MAE's masked-patch loss against a NumPy re-derivation of the paper's definition."""

import numpy as np
import pytest

from kssl.losses import masked_patch_mse, patchify


def numpy_patchify(images, p):
    b, h, w, c = images.shape
    patches = []
    for i in range(h // p):
        for j in range(w // p):
            patches.append(images[:, i * p : (i + 1) * p, j * p : (j + 1) * p, :].reshape(b, -1))
    return np.stack(patches, axis=1)


def numpy_mae_loss(predictions, images, mask, p, normalize):
    """He et al. 2022: MSE on the masked patches, targets normalised per patch (unbiased
    variance, as the official code's torch .var)."""
    target = numpy_patchify(images.astype(np.float64), p)
    if normalize:
        target = (target - target.mean(-1, keepdims=True)) / np.sqrt(target.var(-1, ddof=1, keepdims=True) + 1e-6)
    per_patch = ((predictions - target) ** 2).mean(-1)
    return (per_patch * mask).sum(1) / mask.sum(1)


@pytest.mark.parametrize("size,p", [(8, 2), (12, 4), (16, 8)])
def test_patchify_matches_a_loop_over_patches(rng, size, p):
    images = rng.random((2, size, size, 3)).astype("float32")
    np.testing.assert_array_equal(patchify(images, p).numpy(), numpy_patchify(images, p))


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("ratio", [0.25, 0.75])
def test_masked_patch_mse_matches_numpy_reference(rng, normalize, ratio):
    images = rng.random((3, 16, 16, 3)).astype("float32")
    predictions = rng.normal(size=(3, 16, 48)).astype("float32")
    mask = np.zeros((3, 16), "float32")
    for row in mask:
        row[rng.permutation(16)[: int(16 * ratio)]] = 1
    losses = masked_patch_mse(predictions, images, mask, 4, normalize)
    np.testing.assert_allclose(losses.numpy(), numpy_mae_loss(predictions, images, mask, 4, normalize), rtol=1e-4)


def test_visible_patches_do_not_count(rng):
    images = rng.random((1, 8, 8, 3)).astype("float32")
    predictions = rng.normal(size=(1, 4, 48)).astype("float32")
    mask = np.array([[1, 0, 1, 0]], "float32")
    changed = predictions.copy()
    changed[0, [1, 3]] += 100.0
    np.testing.assert_allclose(
        masked_patch_mse(predictions, images, mask, 4).numpy(), masked_patch_mse(changed, images, mask, 4).numpy()
    )
