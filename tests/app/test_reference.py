"""The docs' generated tables (`kssl.app.reference`): they follow the parser and the registries."""

import pytest


def test_a_generated_table_follows_the_registry_and_an_unknown_one_is_refused(monkeypatch):
    from kssl.app import reference
    from kssl.finetuning import MODES
    from kssl.registry import Spec

    monkeypatch.setitem(MODES, "brand-new", Spec("kssl.finetuning.full:FullFineTuning", "a mode added today"))
    assert "| `brand-new` | a mode added today |" in reference.expand("<!-- kssl:modes -->")
    with pytest.raises(ValueError, match="unknown docs table 'nope'"):
        reference.expand("<!-- kssl:nope -->")


def test_every_command_and_subcommand_gets_its_flags_table():
    from kssl.app import reference

    assert reference.commands()[:3] == ["run", "pretrain", "finetune"]
    assert "data-service worker" in reference.commands()
    worker = reference.flags_table("data-service worker")
    assert "`--dispatcher`" in worker and "`--help`" not in worker
    assert "| `--method` | `typiclust` \\| `kcenter` \\| `random` |" in reference.flags_table("select")
    text = reference.commands_reference()
    assert text.count("\n## kssl ") + text.startswith("## kssl ") == len(reference.commands())
