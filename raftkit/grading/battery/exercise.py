"""What an exercise is: its classes and its scenarios, and the registry of all of them."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..context import ScenarioContext


@dataclass(frozen=True)
class ClassSpec:
    """A class the student writes: its name in the notebook, the raftkit
    class it must extend, and the methods it must define itself."""

    name: str
    base: type
    methods: tuple


@dataclass(frozen=True)
class Scenario:
    exercise: int
    name: str
    points: int
    run: Callable[[ScenarioContext, Any, int], None]
    doc: str
    public: bool = False
    seeds: tuple = (1, 2, 3)

    def __call__(self, ctx: ScenarioContext, impl, seed: int) -> None:
        self.run(ctx, impl, seed)


@dataclass
class Exercise:
    number: int
    title: str
    notebook: str                       # file name stem in solutions/ and exercises/
    classes: tuple
    scenarios: list = field(default_factory=list)

    @property
    def max_points(self) -> int:
        return sum(s.points for s in self.scenarios)

    def scenario(self, name: str) -> Scenario:
        for s in self.scenarios:
            if s.name == name:
                return s
        matches = [s for s in self.scenarios if name.lower() in s.name.lower()]
        if len(matches) == 1:
            return matches[0]
        names = ", ".join(repr(s.name) for s in self.scenarios)
        raise ValueError(f"exercise {self.number} has no scenario {name!r}; its scenarios are {names}")

    def make_impl(self, *classes):
        """The object scenarios receive: the node class, or a KVImpl."""
        if len(self.classes) == 1:
            return classes[0]
        return KVImpl(*classes)


class KVImpl(NamedTuple):
    """Exercise 7: the student's state machine and clerk classes."""
    store: type
    clerk: type


EXERCISES: dict[int, Exercise] = {}


def exercise(number: int, title: str, notebook: str, *classes: ClassSpec, scenarios) -> Exercise:
    """Register exercise ``number``: the classes the student writes and its
    grade sheet, rows made by :func:`scenario` in the order the report lists them."""
    scenarios = list(scenarios)
    strays = [s.name for s in scenarios if s.exercise != number]
    if strays:
        raise ValueError(f"exercise {number}'s grade sheet holds rows of another exercise: {strays}")
    names = [s.name for s in scenarios]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"exercise {number} names these scenarios twice: {twice}")
    if number in EXERCISES:
        raise ValueError(f"exercise {number} is registered twice")
    EXERCISES[number] = Exercise(number, title, notebook, tuple(classes), scenarios)
    return EXERCISES[number]


def scenario(number: int, name: str, points: int, run, *, public: bool = False, seeds=(1, 2, 3),
             doc: str | None = None) -> Scenario:
    """One row of exercise ``number``'s grade sheet: ``run(ctx, impl, seed)``
    (a scenario function, or a ``functools.partial`` of one that fixes its
    other arguments) is worth ``points`` if it passes on every seed. ``doc``
    (what must hold, shown in reports) defaults to the function's docstring."""
    try:
        inspect.signature(run).bind(None, None, None)
    except (TypeError, ValueError):  # not callable, or another shape: it would fail every student's run
        raise TypeError(f"scenario {name!r}: run must be a function (ctx, impl, seed), got {run!r}") from None
    if doc is None:
        doc = (run.func if isinstance(run, functools.partial) else run).__doc__ or ""
    doc = " ".join(doc.split())
    if not doc:
        raise ValueError(f"scenario {name!r} does not say what must hold: give its function a docstring, or doc=")
    return Scenario(number, name, points, run, doc, public, tuple(seeds))
