"""Registers kssl's Keras classes with Keras as soon as Keras is imported.

Keras loads a `.keras` file's custom classes from its registry of serializables, and
imports a class's module by itself only for its own packages (`keras`, `keras_hub`,
`keras_cv`, `keras_nlp`). So kssl's layers and models must be imported before a kssl
file is loaded. Importing them costs a TensorFlow import (seconds), which `import kssl`
should not pay when no Keras is used (the `kssl --help` of the command line).

`import kssl` therefore calls `register_when_keras_is_imported()`: if Keras is already
imported, kssl's classes are registered at once; otherwise a post-import hook registers
them right after the first `import keras` (directly, or through `tf.keras`), so
`import kssl; import keras; keras.saving.load_model("encoder.keras")` works.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

REGISTERING_MODULES = (
    "kssl.layers",
    "kssl.models.classifier",
    "kssl.training.optimizers",
    "kssl.runtime.loss_scaling",
    "kssl.encoders.applications",
    "kssl.finetuning.discriminative",
)


def registering_modules() -> list[str]:
    """The modules to import: kssl's layers and parts, and every registered method's and
    mode's own module, read from the registries (a new method needs no line here)."""
    from kssl.finetuning import MODES
    from kssl.methods import METHODS

    specs = [*METHODS.values(), *MODES.values()]
    return list(dict.fromkeys([*REGISTERING_MODULES, *(spec.target.partition(":")[0] for spec in specs)]))


def register_now() -> None:
    """Imports the modules whose classes carry `@keras.saving.register_keras_serializable`."""
    for name in registering_modules():
        importlib.import_module(name)


def _kssl_imports_under_way() -> list[str]:
    """The kssl modules Python is executing right now (their names are not all defined yet)."""
    return [
        name
        for name, module in list(sys.modules.items())
        if name.split(".")[0] == "kssl" and getattr(getattr(module, "__spec__", None), "_initializing", False)
    ]


def register_or_defer() -> None:
    """`register_now`; if that meets a kssl module still being imported (Keras was first
    imported from inside it, as `import kssl.app.doctor` does through `kssl.data.augment`:
    registering imports modules that need its names before it defines them), again at the
    first import after it is done, or when kssl loads a model file (`register_pending`)."""
    try:
        register_now()
    except ImportError as error:
        if not _kssl_imports_under_way():
            warnings.warn(f"kssl could not register its Keras classes: {error!r}", stacklevel=3)
        elif not any(isinstance(finder, _RegisterAfterKsslImports) for finder in sys.meta_path):
            sys.meta_path.insert(0, _RegisterAfterKsslImports())
    except Exception as error:  # never break the import that brought Keras in
        warnings.warn(f"kssl could not register its Keras classes: {error!r}", stacklevel=3)


def register_pending() -> None:
    """Registers now if registering was put off (kssl calls it before loading a model file)."""
    for finder in [f for f in sys.meta_path if isinstance(f, _RegisterAfterKsslImports)]:
        sys.meta_path.remove(finder)
        register_or_defer()


class _RegisterAfterKsslImports(importlib.abc.MetaPathFinder):
    """Registers kssl's classes at the first import once no kssl module is being imported."""

    def find_spec(self, fullname, path=None, target=None):
        if self in sys.meta_path and not _kssl_imports_under_way():
            sys.meta_path.remove(self)
            register_or_defer()
        return None


class _AfterKerasLoader(importlib.abc.Loader):
    """Runs Keras' own loader, then registers kssl's classes."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        for finder in [f for f in sys.meta_path if isinstance(f, _KerasImportHook)]:
            sys.meta_path.remove(finder)
        register_or_defer()


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Finds `keras` with the other finders and wraps its loader.

    It stays in place until Keras is actually executed: TensorFlow asks
    `importlib.util.find_spec("keras")` at import time without importing it.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _AfterKerasLoader(spec.loader)
        return spec


def register_when_keras_is_imported() -> None:
    """Registers kssl's Keras classes now if Keras is imported, else right after it is.

    Examples:
        >>> import keras, kssl.registration
        >>> kssl.registration.register_when_keras_is_imported()
        >>> keras.saving.get_registered_object("kssl>SimCLR").__name__
        'SimCLR'
    """
    if "keras" in sys.modules:
        register_now()
    elif not any(isinstance(finder, _KerasImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _KerasImportHook())
