"""A small declarative schema for BAB's YAML configuration.

Validation walks PyYAML *nodes* (not loaded values), so every error names the file, the line and the key path
and says what was expected. Unknown keys are errors (a typo must not be silently ignored). The same schema
objects render the configuration reference (``docs/configuration.md``), so docs and validation cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

REQUIRED: Any = object()


class ConfigError(ValueError):
    """A configuration error located in a file: ``bab.yaml:7: meters[0].driver.port: expected ...``."""

    def __init__(self, message: str, *, file: str = "<config>", line: int | None = None, path: str = "") -> None:
        self.file, self.line, self.path, self.message = file, line, path, message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {path + ': ' if path else ''}{message}")


@dataclass
class Ctx:
    file: str

    def error(self, node: yaml.Node | None, path: str, message: str) -> ConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return ConfigError(message, file=self.file, line=line, path=path)


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return f"{node.value!r}"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    return "a list"


class Type:
    """Base of all schema types."""

    doc: str = ""
    default: Any = REQUIRED

    def expected(self) -> str:
        raise NotImplementedError

    def validate(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:
        raise NotImplementedError

    def default_value(self) -> Any:
        d = self.default
        return d() if callable(d) else d


def _scalar(node: yaml.Node, path: str, ctx: Ctx, expected: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise ctx.error(node, path, f"expected {expected}, got {_describe(node)}")
    return _construct(node)


def _construct(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


@dataclass
class Str(Type):
    doc: str = ""
    default: Any = REQUIRED
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    example: str | None = None

    def expected(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return "a string"

    def validate(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:
        value = _scalar(node, path, ctx, self.expected())
        if isinstance(value, (int, float)) and not isinstance(value, bool) and self.choices is None:
            value = node.value  # a meter ID of digits or a port number is still text
        if not isinstance(value, str):
            raise ctx.error(node, path, f"expected {self.expected()}, got {_describe(node)}")
        if self.choices and value not in self.choices:
            raise ctx.error(node, path, f"expected {self.expected()}, got {value!r}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ctx.error(node, path, f"expected {self.doc or self.pattern}, got {value!r}")
        return value


class _Number(Type):
    """A numeric scalar within optional bounds; subclasses say which Python types count and the noun."""

    min: Any = None
    max: Any = None
    noun = "a number"
    accepts: tuple[type, ...] = (int, float)

    def expected(self) -> str:
        rng = ""
        if self.min is not None and self.max is not None:
            rng = f" from {self.min} to {self.max}"
        elif self.min is not None:
            rng = f" >= {self.min}"
        return self.noun + rng

    def validate(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:
        value = _scalar(node, path, ctx, self.expected())
        if isinstance(value, bool) or not isinstance(value, self.accepts):
            raise ctx.error(node, path, f"expected {self.expected()}, got {_describe(node)}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise ctx.error(node, path, f"expected {self.expected()}, got {value}")
        return self.accepts[0](value)


@dataclass
class Int(_Number):
    doc: str = ""
    default: Any = REQUIRED
    min: int | None = None
    max: int | None = None
    noun = "a whole number"
    accepts = (int,)


@dataclass
class Float(_Number):
    doc: str = ""
    default: Any = REQUIRED
    min: float | None = None
    max: float | None = None
    noun = "a number"
    accepts = (float, int)


@dataclass
class Bool(Type):
    doc: str = ""
    default: Any = REQUIRED

    def expected(self) -> str:
        return "true or false"

    def validate(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:
        value = _scalar(node, path, ctx, self.expected())
        if not isinstance(value, bool):
            raise ctx.error(node, path, f"expected {self.expected()}, got {_describe(node)}")
        return value


@dataclass
class Custom(Type):
    """A scalar converted by ``convert`` (which raises ValueError with a reason)."""

    convert: Callable[[Any], Any] = lambda v: v
    what: str = "a value"
    doc: str = ""
    default: Any = REQUIRED

    def expected(self) -> str:
        return self.what

    def validate(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:
        value = _scalar(node, path, ctx, self.what)
        try:
            return self.convert(value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ctx.error(node, path, f"expected {self.what}: {exc}") from None


@dataclass
class Nullable(Type):
    """``inner`` or ``null``."""

    inner: Type = field(default_factory=Str)
    doc: str = ""
    default: Any = None

    def expected(self) -> str:
        return f"{self.inner.expected()} or null"

    def validate(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return None
        return self.inner.validate(node, path, ctx)


@dataclass
class ListOf(Type):
    item: Type = field(default_factory=Str)
    doc: str = ""
    default: Any = REQUIRED
    min_items: int = 0
    unique: str | None = None  # a key of mapping items whose values must differ

    def expected(self) -> str:
        return f"a list of {self.item.expected()}"

    def validate(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:
        if not isinstance(node, yaml.SequenceNode):
            raise ctx.error(node, path, f"expected a list, got {_describe(node)}")
        if len(node.value) < self.min_items:
            raise ctx.error(node, path, f"expected at least {self.min_items} entries, got {len(node.value)}")
        out = [self.item.validate(n, f"{path}[{i}]", ctx) for i, n in enumerate(node.value)]
        if self.unique:
            seen: dict[Any, int] = {}
            for i, (n, v) in enumerate(zip(node.value, out, strict=True)):
                key = v.get(self.unique) if isinstance(v, dict) else None
                if key in seen:
                    raise ctx.error(n, f"{path}[{i}].{self.unique}",
                                    f"duplicate {self.unique} {key!s} (also in entry {seen[key]})")
                seen[key] = i
        return out


@dataclass
class DictOf(Type):
    """A mapping with free keys (validated by ``key``) and values of one type."""

    key: Type = field(default_factory=Str)
    value: Type = field(default_factory=Str)
    doc: str = ""
    default: Any = REQUIRED

    def expected(self) -> str:
        return f"a mapping of {self.key.expected()} to {self.value.expected()}"

    def validate(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:
        if not isinstance(node, yaml.MappingNode):
            raise ctx.error(node, path, f"expected {self.expected()}, got {_describe(node)}")
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            k = self.key.validate(knode, f"{path}.{knode.value}", ctx)
            if k in out:
                raise ctx.error(knode, f"{path}.{knode.value}", "duplicate key")
            out[k] = self.value.validate(vnode, f"{path}.{knode.value}", ctx)
        return out


@dataclass
class Map(Type):
    """A mapping with a fixed set of keys; unknown keys are errors."""

    fields: dict[str, Type] = field(default_factory=dict)
    doc: str = ""
    default: Any = REQUIRED
    # Extra key sets chosen by the value of one discriminating key (e.g. driver ``type``).
    variants: Callable[[str], dict[str, Type] | None] | None = None
    discriminator: str | None = None
    variant_hint: Callable[[], str] | None = None  # lists the valid discriminator values for errors
    # A check across keys of the validated mapping: None, or (key path, message) of the first problem.
    check: Callable[[dict[str, Any]], tuple[tuple[str, ...], str] | None] | None = None

    def expected(self) -> str:
        return "a mapping"

    def default_value(self) -> Any:
        """An optional section left out: every key at its default (the section must have no required key)."""
        if self.default is REQUIRED:
            return REQUIRED
        return {k: t.default_value() for k, t in self.fields.items() if t.default is not REQUIRED}

    def validate(self, node: yaml.Node, path: str, ctx: Ctx) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null") and node.tag.endswith("null"):
            node = yaml.MappingNode("tag:yaml.org,2002:map", [], node.start_mark, node.end_mark)
        if not isinstance(node, yaml.MappingNode):
            raise ctx.error(node, path, f"expected a mapping, got {_describe(node)}")
        fields = dict(self.fields)
        seen: dict[str, yaml.Node] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise ctx.error(knode, path, "keys must be plain names")
            if knode.value in seen:
                raise ctx.error(knode, _join(path, knode.value), "duplicate key")
            seen[knode.value] = vnode
        out: dict[str, Any] = {}
        if self.discriminator and self.variants:
            dnode = seen.get(self.discriminator)
            dtype = fields[self.discriminator]
            if dnode is None:
                raise ctx.error(node, path, f"missing required key '{self.discriminator}'")
            dvalue = dtype.validate(dnode, _join(path, self.discriminator), ctx)
            extra = self.variants(dvalue)
            if extra is None:
                hint = f" ({self.variant_hint()})" if self.variant_hint else ""
                raise ctx.error(dnode, _join(path, self.discriminator),
                                f"unknown {self.discriminator} {dvalue!r}{hint}")
            fields.update(extra)
        for knode, vnode in node.value:
            key = knode.value
            if key not in fields:
                known = ", ".join(sorted(fields))
                hint = _close_match(key, fields)
                raise ctx.error(knode, _join(path, key),
                                f"unknown key{hint}; expected one of: {known}")
            out[key] = fields[key].validate(vnode, _join(path, key), ctx)
        for key, ftype in fields.items():
            if key not in out:
                if ftype.default is REQUIRED:
                    raise ctx.error(node, _join(path, key), f"missing required key ({ftype.expected()})")
                out[key] = ftype.default_value()
        if self.check is not None:
            problem = self.check(out)
            if problem is not None:
                keys, message = problem
                raise ctx.error(_node_at(node, keys), _join(path, ".".join(keys)), message)
        return out


def _node_at(node: yaml.Node, keys: tuple[str, ...]) -> yaml.Node:
    """The node of a key path below a mapping node (as deep as it exists), for error locations."""
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        found = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
        if found is None:
            break
        node = found
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _close_match(key: str, fields: dict[str, Type]) -> str:
    import difflib

    m = difflib.get_close_matches(key, list(fields), n=1)
    return f" (did you mean '{m[0]}'?)" if m else ""


def load_yaml(text: str, schema: Type, file: str = "<config>") -> Any:
    """Parse YAML ``text`` and validate it against ``schema``; raises ConfigError."""
    ctx = Ctx(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(f"not valid YAML: {exc.problem or exc.context}", file=file,
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=file) from None
    if node is None:
        raise ConfigError("the file is empty", file=file)
    return schema.validate(node, "", ctx)
