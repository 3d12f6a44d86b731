"""The command decides multi-crop's size-dependent default once, on the encoder it will
train, says so, and records the number in the run's config (`config.json`)."""

import pytest

from kssl.app.config import RunConfig, check_method_options
from kssl.app.jobs import check_encoder_and_memory
from kssl.methods import method_class
from kssl.models.multicrop import AUTO_LOCAL_CROPS


@pytest.mark.parametrize(
    ("size", "encoder", "options", "expected", "said"),
    [
        (96, "resnet18", {}, AUTO_LOCAL_CROPS, "multi-crop: 4 local crops of 41 px (from 64 px"),
        (32, "resnet18", {}, 0, "multi-crop: off (below 64 px"),
        (64, "vit6", {}, 0, "multi-crop: off (the encoder takes one size"),
        (96, "resnet18", {"local_crops": 2}, 2, None),  # asked for: nothing to say
    ],
)
def test_the_command_decides_local_crops_on_its_encoder_and_says_so(capsys, size, encoder, options, expected, said):
    config = check_method_options(RunConfig(data="photos/", image_size=size, encoder=encoder, method_options=options))
    assert config.method_options["local_crops"] is (None if not options else 2)
    config = check_encoder_and_memory(method_class("simclr"), config, pretraining=False)
    assert config.method_options["local_crops"] == expected
    out = capsys.readouterr().out
    assert (said in out) if said else "multi-crop" not in out
