"""Finding science modules (entry points), ordering them, and describing them.

Built-in modules are registered in ``pyproject.toml`` exactly like third-party ones, so a
package that declares an entry point in ``fink_broker.science_modules`` is picked up with
no change to the broker: discovery is the only way modules enter the pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import TypeVar

from fink_broker.plugins.module import ScienceModule

log = logging.getLogger(__name__)

#: Entry-point group of science modules.
SCIENCE_GROUP = "fink_broker.science_modules"


P = TypeVar("P")


class PluginError(RuntimeError):
    """An entry point that cannot be loaded or does not name a valid module."""


def load_plugins(group: str, kind: type[P], noun: str, *, skip_broken: bool) -> dict[str, P]:
    """Every object of type ``kind`` registered in the entry-point ``group``, by name (sorted).

    Science modules and filters are discovered the same way. A broken third-party plugin
    raises :class:`PluginError` by default, so a typo does not silently drop a module or a
    topic from production; ``skip_broken=True`` logs and skips it instead. An entry point's
    name must equal the plugin's own ``name``.
    """
    found: dict[str, P] = {}
    for entry in sorted(entry_points(group=group), key=lambda e: e.name):
        where = f"entry point {entry.name!r} = {entry.value!r} ({entry.group})"
        try:
            try:
                obj = entry.load()
            except Exception as error:  # re-raised with the entry point named, for the operator
                raise PluginError(
                    f"cannot load {where}: {type(error).__name__}: {error}"
                ) from error
            if not isinstance(obj, kind):
                article = "an" if kind.__name__[0] in "AEIOU" else "a"
                raise PluginError(
                    f"{where} is a {type(obj).__name__}, not {article} {kind.__name__}"
                )
            if obj.name != entry.name:  # type: ignore[attr-defined]
                raise PluginError(
                    f"{where} names {noun} {obj.name!r}; the two names must agree"  # type: ignore[attr-defined]
                )
        except PluginError:
            if not skip_broken:
                raise
            log.exception("skipping broken %s %s", noun, entry.name)
            continue
        if entry.name in found:
            raise PluginError(f"two entry points declare {noun} {entry.name!r}")
        found[entry.name] = obj
    log.debug("discovered %d %ss in %s: %s", len(found), noun, group, ", ".join(found))
    return found


def discover(group: str = SCIENCE_GROUP, *, skip_broken: bool = False) -> dict[str, ScienceModule]:
    """Every science module installed in this environment, by name (see :func:`load_plugins`)."""
    return load_plugins(group, ScienceModule, "module", skip_broken=skip_broken)


def modules_for(
    survey: str, modules: Mapping[str, ScienceModule] | Iterable[ScienceModule] | None = None
) -> list[ScienceModule]:
    """The modules that apply to ``survey``, in dependency order (default: all discovered)."""
    pool = discover() if modules is None else modules
    values = list(pool.values()) if isinstance(pool, Mapping) else list(pool)
    return resolve_order([m for m in values if m.supports(survey)])


def resolve_order(modules: Iterable[ScienceModule]) -> list[ScienceModule]:
    """Order modules so that each runs after the modules whose outputs it reads.

    Modules are placed in waves (a wave needs only earlier waves), alphabetically within a
    wave, so the plan is reproducible and each wave's modules are independent. Two modules
    declaring the same output, or a dependency cycle, raise ``ValueError``.

    >>> from fink_broker.plugins.module import science_module
    >>> def f(df): ...
    >>> a = science_module(name="a", version="1", inputs=["b_out"], outputs=[("a_out", "int")])(f)
    >>> b = science_module(name="b", version="1", inputs=["mag"], outputs=[("b_out", "int")])(f)
    >>> [m.name for m in resolve_order([a, b])]
    ['b', 'a']
    """
    by_name: dict[str, ScienceModule] = {}
    producer: dict[str, str] = {}
    for module in modules:
        if module.name in by_name:
            raise ValueError(f"science module {module.name!r} listed twice")
        by_name[module.name] = module
        for column in module.output_names:
            if column in producer:
                first = producer[column]
                raise ValueError(
                    f"column {column!r} is declared by both {first!r} and {module.name!r}"
                )
            producer[column] = module.name
    needs = {
        name: {producer[c] for c in m.inputs if c in producer} - {name}
        for name, m in by_name.items()
    }
    ordered: list[ScienceModule] = []
    done: set[str] = set()
    while len(done) < len(by_name):
        ready = sorted(n for n in by_name if n not in done and needs[n] <= done)
        if not ready:
            raise ValueError(f"science modules form a dependency cycle: {_cycle(needs, done)}")
        for name in ready:
            ordered.append(by_name[name])
            done.add(name)
    return ordered


def _cycle(needs: Mapping[str, set[str]], done: set[str]) -> str:
    """One cycle among the unresolved modules, as ``a -> b -> a`` (for the error message)."""
    start = min(n for n in needs if n not in done)
    path = [start]
    while True:
        nxt = min(needs[path[-1]] - done)
        if nxt in path:
            return " -> ".join([*path[path.index(nxt) :], nxt])
        path.append(nxt)


def module_signature(modules: Iterable[ScienceModule]) -> str:
    """``name=version`` pairs sorted by name, joined by ``;`` (provenance of a run).

    >>> from fink_broker.plugins.module import science_module
    >>> m = science_module(name="m", version="2.1", inputs=[], outputs=[("o", "int")])(len)
    >>> module_signature([m])
    'm=2.1'
    """
    return ";".join(f"{m.name}={m.version}" for m in sorted(modules, key=lambda m: m.name))


def describe_modules(modules: Mapping[str, ScienceModule] | Iterable[ScienceModule]) -> str:
    """A plain-text table of modules and their declared columns (for ``fink modules list``)."""
    values = list(modules.values()) if isinstance(modules, Mapping) else list(modules)
    lines: list[str] = []
    for module in sorted(values, key=lambda m: m.name):
        surveys = "all" if module.surveys is None else ", ".join(module.surveys)
        lines.append(f"{module.name} {module.version}  [surveys: {surveys}]")
        if module.description:
            lines.append(f"  {module.description}")
        lines.append(f"  inputs: {', '.join(module.inputs) or '-'}")
        rows = [("output", "type", "unit", "description")]
        rows += [(c.name, c.dtype, c.unit or "-", c.description) for c in module.outputs]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(3)]
            lines.append("    " + "  ".join([*cells, row[3]]).rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
