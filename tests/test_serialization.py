"""Every Keras class kssl registers survives a config round trip and a `.keras` round trip."""

import keras
import numpy as np
import pytest
from helpers import assert_serializable, tiny_encoder

import kssl  # noqa: F401  (registers kssl's classes)
from kssl.layers import FusedBatchNormalization, ProjectionHead
from kssl.models import Classifier, SimCLR

IMAGES = np.random.default_rng(0).random((4, 16, 16, 3)).astype("float32")


def fused_batch_norm():
    layer = FusedBatchNormalization(momentum=0.8)
    layer(np.random.default_rng(1).normal(2, 3, (8, 4, 4, 2)).astype("float32"), training=True)  # moves statistics
    return layer, np.random.default_rng(2).normal(size=(3, 4, 4, 2)).astype("float32"), None


def projection_head():
    return ProjectionHead(hidden_dim=8, output_dim=4, depth=3), np.ones((5, 6), "float32"), None


def simclr():
    model = SimCLR(tiny_encoder(), temperature=0.3, probe_classes=3)
    return model, IMAGES, lambda m, x: m.project(x)


def classifier():
    model = Classifier(tiny_encoder(), num_classes=3, mode="partial", l2_sp=0.1, class_names=["a", "b", "c"])
    model.compile()
    return model, IMAGES, None


def classifier_with(mode, **options):
    def make():
        model = Classifier(tiny_encoder(), num_classes=3, mode=mode, mode_options=options)
        model.compile()
        return model, IMAGES, None

    return make


def residual_adapter():
    from kssl.layers import ResidualAdapter

    layer = ResidualAdapter(reduction=2)
    layer.build((None, 4, 4, 6))
    layer.up.kernel.assign(np.random.default_rng(5).normal(size=(3, 6)))  # not the identity
    return layer, np.random.default_rng(6).normal(size=(2, 4, 4, 6)).astype("float32"), None


def application_preprocessing():
    from kssl.encoders.applications import ApplicationPreprocessing

    return ApplicationPreprocessing("resnet"), IMAGES, None


def method(name, **options):
    def make():
        from kssl.methods import method_class

        model = method_class(name)(tiny_encoder(), probe_classes=3, **options)
        return model, IMAGES, lambda m, x: m(x)

    return make


def distillation():
    import tensorflow as tf

    from kssl.models.distillation import Distillation

    teacher = tiny_encoder(widths=(4, 4, 8, 8, 12))
    model = Distillation(tiny_encoder(), teacher, normalize=False, probe_classes=3)
    return model, IMAGES, lambda m, x: tf.concat([m(x), m.teacher_features(x)], axis=1)


def mae():
    from kssl.encoders import vit
    from kssl.models import MAE

    model = MAE(vit(depth=2, width=1 / 12, image_size=16), mask_ratio=0.5, seed=3, probe_classes=3)
    return model, IMAGES, lambda m, x: m(x)


def vit_layer(name):
    def make():
        from kssl.layers import PatchEmbedding, TransformerBlock

        if name == "patch":
            return PatchEmbedding(patch_size=4, width=16), IMAGES, None
        return TransformerBlock(heads=2, mlp_ratio=2.0), np.random.default_rng(3).normal(size=(2, 5, 8)), None

    return make


def centre():
    from kssl.layers import Centre

    layer = Centre(4, momentum=0.5)
    layer.update([np.random.default_rng(7).normal(size=(6, 4)).astype("float32")])  # not the zeros it starts at
    return layer, np.ones((3, 4), "float32"), None


def dino_head():
    from kssl.layers import DINOHead

    return DINOHead(prototypes=6, hidden_dim=8, bottleneck_dim=4), np.ones((5, 6), "float32"), None


def prototypes():
    from kssl.layers import Prototypes

    return Prototypes(5), np.random.default_rng(8).normal(size=(3, 4)).astype("float32"), None


def mae_decoder():
    from kssl.models import MAEDecoder

    layer = MAEDecoder(num_patches=16, patch_pixels=12, width=16, depth=1, heads=2)
    layer.build((None, 4, 8), (None, 16))
    restore = np.stack([np.random.default_rng(i).permutation(16) for i in range(2)])
    tokens = np.random.default_rng(4).normal(size=(2, 4, 8)).astype("float32")
    return layer, (tokens, restore), None


CASES = {
    "kssl>SimSiam": method("simsiam"),
    "kssl>BYOL": method("byol", momentum=0.98),
    "kssl>MoCo": method("moco", queue_size=64, temperature=0.1, symmetric=False),
    "kssl>BarlowTwins": method("barlow", lambda_=0.01),
    "kssl>VICReg": method("vicreg", variance_weight=20.0),
    "kssl>MAE": mae,
    "kssl>DINO": method("dino", prototypes=8, local_crops=2, centre_momentum=0.8),
    "kssl>Distillation": distillation,
    "kssl>DINOHead": dino_head,
    "kssl>Prototypes": prototypes,
    "kssl>Centre": centre,
    "kssl>MAEDecoder": mae_decoder,
    "kssl>PatchEmbedding": vit_layer("patch"),
    "kssl>TransformerBlock": vit_layer("block"),
    "kssl>FusedBatchNormalization": fused_batch_norm,
    "kssl>ProjectionHead": projection_head,
    "kssl>SimCLR": simclr,
    "kssl>Classifier": classifier,
    "kssl>ResidualAdapter": residual_adapter,
    "kssl>ApplicationPreprocessing": application_preprocessing,
}
# Not registered classes of their own, but each changes what a Classifier saves.
MODE_CASES = {"adapter": classifier_with("adapter"), "gradual": classifier_with("gradual", every_epochs=2.0)}


def test_every_registered_kssl_class_has_a_case():
    registered = {
        name
        for name, cls in keras.saving.get_custom_objects().items()
        if name.startswith("kssl>") and issubclass(cls, keras.layers.Layer)  # LARS: tests/training/test_optimizers.py
    }
    assert registered == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES) + sorted(MODE_CASES))
def test_round_trips(name, tmp_path):
    obj, inputs, call = {**CASES, **MODE_CASES}[name]()
    assert_serializable(obj, inputs, tmp_path, call)
