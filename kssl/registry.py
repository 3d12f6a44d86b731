"""Name -> spec registries that import nothing until a class is asked for.

kssl's registries (`kssl.methods.METHODS`, `kssl.finetuning.MODES`) map a name to a
`Spec`: where the class lives (`"module:Class"`), a one-line summary, and the class's
own options with their defaults and a line of help. Everything else reads the spec:
registration with Keras, the command's `--help`, `--method-option`/`--mode-option`,
`config.json` and the contract tests (which check that the options are the class's
constructor arguments, with the same defaults). So the command line lists them in
`--help` without importing TensorFlow.

Examples:
    >>> registry = {"ordered": Spec("collections:OrderedDict", "a dict that remembers order")}
    >>> check_name(registry, "Ordered", "collection"), load_class(registry, "ordered", "collection").__name__
    ('ordered', 'OrderedDict')
    >>> spec = Spec("m:C", "a thing", {"rank": Option(8, "the rank"), "alpha": Option(None, "scale", float)})
    >>> spec.parse_options(["rank=4", "alpha=16"], "--mode-option")
    {'rank': 4, 'alpha': 16.0}
    >>> spec.resolved_options({"rank": 2})
    {'rank': 2, 'alpha': None}
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping

from kssl.errors import InputError

_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


@dataclasses.dataclass(frozen=True)
class Option:
    """One constructor option of a registered class.

    Attributes:
        default: the constructor's default (a contract test checks they agree).
        help: one line for `--help`.
        kind: the value's type when the default is None (else the default's type).
    """

    default: object
    help: str
    kind: type | None = None

    @property
    def type(self) -> type:
        return self.kind or type(self.default)

    def parse(self, text: str):
        """The option's value from command-line text (`none` for options whose default is None)."""
        text = str(text).strip()
        if self.default is None and text.lower() == "none":
            return None
        kind = self.type
        if kind is bool:
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise ValueError("true or false")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        return kind(text)

    def check(self, value):
        """`value` if it has the option's type (an int passes for a float), else a `ValueError`."""
        kind = self.type
        if value is None and self.default is None:
            return value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(kind.__name__)
        return value


def import_target(target: str):
    """The object a `"module:name"` string names, its module imported on first use.

    Examples:
        >>> import_target("collections:OrderedDict").__name__
        'OrderedDict'
    """
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclasses.dataclass(frozen=True)
class Spec:
    """A registered class: `"module:Class"`, a one-line summary, and its own options."""

    target: str
    summary: str
    options: Mapping[str, Option] = dataclasses.field(default_factory=dict)

    def load(self):
        """The class, imported on first use."""
        return import_target(self.target)

    def _unknown(self, key, flag, name):
        accepted = ", ".join(self.options) or "none"
        return InputError(f"{flag} {key}: {name} has no option {key!r}. Its options: {accepted}.")

    def parse_options(self, pairs, flag: str = "--option", name: str | None = None) -> dict:
        """`{key: value}` from `KEY=VALUE` strings (or a dict of strings or values), typed by
        the options' defaults; an unknown key or a value of the wrong type is an `InputError`
        naming the accepted keys."""
        name = name or self.target.rpartition(":")[2]
        items = pairs.items() if isinstance(pairs, Mapping) else [_split(pair, flag) for pair in pairs or []]
        parsed = {}
        for key, value in items:
            if key not in self.options:
                raise self._unknown(key, flag, name)
            option = self.options[key]
            try:
                parsed[key] = option.parse(value) if isinstance(value, str) else option.check(value)
            except ValueError:
                raise InputError(
                    f"{flag} {key}={value}: {name}'s {key} takes {option.type.__name__} values "
                    f"(default {option.default!r}: {option.help})."
                ) from None
        return parsed

    def resolved_options(self, options: Mapping | None = None) -> dict:
        """Every option's value: the given ones over the defaults (what `config.json` records)."""
        return {key: option.default for key, option in self.options.items()} | dict(options or {})


def split_options(pairs, flag: str) -> dict:
    """`{KEY: "VALUE"}` of `KEY=VALUE` strings (repeated command-line options), typed later by a spec."""
    return dict(_split(pair, flag) for pair in pairs or [])


def _split(pair: str, flag: str):
    key, equals, value = str(pair).partition("=")
    if not equals or not key.strip():
        raise InputError(f"{flag} takes KEY=VALUE. Received: {pair!r}")
    return key.strip(), value


def check_name(registry: dict, name: str, kind: str) -> str:
    """`name` in the registry's spelling (lower case), or an `InputError` listing the names."""
    key = str(name).lower()
    if key not in registry:
        raise InputError(f"Unknown {kind} {name!r}. Available: {', '.join(registry)}.")
    return key


def load_class(registry: dict, name: str, kind: str):
    """The class registered as `name` (case-insensitive), imported on first use."""
    return registry[check_name(registry, name, kind)].load()


def renamed(module: str, old: dict):
    """A module `__getattr__` that gives each old name of `old` (`{old: (new, value)}`) with
    a `DeprecationWarning` naming the new one: the one path, under its old name.

    Examples:
        >>> import warnings
        >>> getattr_ = renamed("kssl.example", {"OLD": ("NEW", 3)})
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     value = getattr_("OLD")
        >>> value, str(caught[0].message)
        (3, 'kssl.example.OLD is kssl.example.NEW now; the old name goes in a later release.')
    """
    import warnings

    def __getattr__(name):
        if name in old:
            new, value = old[name]
            warnings.warn(f"{module}.{name} is {module}.{new} now; the old name goes in a later release.",
                          DeprecationWarning, stacklevel=2)  # fmt: skip
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
