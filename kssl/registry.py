"""Name -> class registries that import nothing until a class is asked for.

kssl's registries (`kssl.methods.METHODS`, `kssl.finetuning.STRATEGIES`) map a name to
`("module:Class", one-line summary)`, so the command line lists them in `--help`
without importing TensorFlow.

Example:
>>> registry = {"ordered": ("collections:OrderedDict", "a dict that remembers order")}
>>> check_name(registry, "Ordered", "collection"), load_class(registry, "ordered", "collection").__name__
('ordered', 'OrderedDict')
"""

from __future__ import annotations

import importlib

from kssl.errors import InputError


def check_name(registry: dict, name: str, kind: str) -> str:
    """`name` in the registry's spelling (lower case), or an `InputError` listing the names."""
    key = str(name).lower()
    if key not in registry:
        raise InputError(f"Unknown {kind} {name!r}. Available: {', '.join(registry)}.")
    return key


def load_class(registry: dict, name: str, kind: str):
    """The class registered as `name` (case-insensitive), imported on first use."""
    module, _, attribute = registry[check_name(registry, name, kind)][0].partition(":")
    return getattr(importlib.import_module(module), attribute)
