import keras
import numpy as np
import pytest

from kssl.layers import ProjectionHead


def test_layers_in_the_order_of_simclrs_head():
    head = ProjectionHead(hidden_dim=16, output_dim=4, depth=3)
    head.build((None, 8))
    kinds = [type(layer).__name__ for block in head.blocks for layer in block]
    assert kinds == ["Dense", "BatchNormalization", "ReLU"] * 2 + ["Dense", "BatchNormalization"]
    dense = [layer for block in head.blocks for layer in block if isinstance(layer, keras.layers.Dense)]
    assert [d.kernel.shape for d in dense] == [(8, 16), (16, 16), (16, 4)]
    assert not any(d.use_bias for d in dense)  # batch norm follows every Dense
    last_norm = head.blocks[-1][-1]
    assert not last_norm.center and last_norm.scale


def test_training_output_is_centred_per_dimension_and_matches_a_numpy_forward_pass(rng):
    head = ProjectionHead(hidden_dim=6, output_dim=3, depth=2)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = np.asarray(head(x, training=True))
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)

    def batch_norm(h, layer):
        h = (h - h.mean(0)) / np.sqrt(h.var(0) + layer.epsilon) * np.asarray(layer.gamma)
        return h + np.asarray(layer.beta) if layer.center else h

    (dense_0, norm_0, _), (dense_1, norm_1) = head.blocks
    hidden = np.maximum(batch_norm(x @ np.asarray(dense_0.kernel), norm_0), 0.0)
    expected = batch_norm(hidden @ np.asarray(dense_1.kernel), norm_1)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_without_batch_norm_dense_layers_have_biases():
    head = ProjectionHead(hidden_dim=8, output_dim=2, depth=2, batch_norm=False)
    assert head(np.ones((2, 4), "float32")).shape == (2, 2)
    assert all(layer.use_bias for block in head.blocks for layer in block if isinstance(layer, keras.layers.Dense))


@pytest.mark.parametrize("name, value", [("hidden_dim", 0), ("output_dim", -1), ("depth", 0), ("depth", 1.5)])
def test_bad_sizes_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        ProjectionHead(**{name: value})
