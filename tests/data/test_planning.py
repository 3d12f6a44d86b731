"""Where the data lives and at what size (`kssl.data.planning`), decided from the images and
the machine before any decoding."""

import pytest

from kssl.data import planning


def test_small_images_keep_their_size_and_photos_get_what_the_device_affords():
    assert planning.default_image_size([(32, 32)] * 5, accelerator=False)[0] == 32
    assert planning.default_image_size([(4, 4)], accelerator=False)[0] == 8  # never below 8 px
    size, reason = planning.default_image_size([(375, 500)] * 3, accelerator=False)
    assert size == planning.CPU_IMAGE_SIZE and "affordable on a CPU" in reason
    assert planning.default_image_size([(375, 500)], accelerator=True)[0] == planning.ACCELERATOR_IMAGE_SIZE


def test_the_memory_estimate_counts_stored_copies_and_the_originals_views():
    # 24 px images at 16 px: stored at 1.5x (24 px, the originals themselves), no views beside.
    assert planning.decoded_bytes(10, [(24, 24)], 16) == 10 * 24 * 24 * 3
    # 480 x 640 photos at 96 px: copies of 144 x 192, and each original's 96 px view beside.
    assert planning.decoded_bytes(10, [(480, 640)], 96) == 10 * (144 * 192 * 3 + 96 * 96 * 3)


def test_streaming_starts_past_a_quarter_of_the_ram_and_says_why(monkeypatch):
    monkeypatch.setattr(planning, "memory_bytes", lambda: 4 * 10 * 24 * 24 * 3)  # exactly 4x ten 24 px images
    assert planning.choose_streaming(10, [(24, 24)], 16) == (
        False, "in memory: decoded for 16 px the 10 images take about 17.3 kB, within 25% of this machine's 69.1 kB "
        "of RAM; --stream overrides")  # fmt: skip
    streamed, reason = planning.choose_streaming(11, [(24, 24)], 16)
    assert streamed and "more than 25%" in reason and "--in-memory overrides" in reason
    assert planning.choose_streaming(11, [(24, 24)], 16, stream=False)[0] is False


@pytest.mark.parametrize("shapes", [[(20, 6000)], [(6000, 20)]])
def test_a_banner_is_stored_as_its_centred_part_of_at_most_two_to_one(shapes):
    # 20 x 6000 at 16 px: the centred 20 x 40 part (2:1), at most 24 px on its shorter side: kept.
    assert planning.decoded_bytes(1, shapes, 16) == 20 * 40 * 3 + 16 * 16 * 3
