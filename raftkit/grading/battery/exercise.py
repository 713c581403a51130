"""What an exercise is: its classes and its scenarios, and the registry of all of them."""

from __future__ import annotations

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


def exercise(number, title, notebook, *classes):
    EXERCISES[number] = Exercise(number, title, notebook, tuple(classes))


def scenario(number: int, name: str, points: int, *, public: bool = False, seeds=(1, 2, 3)):
    """Register the decorated function as a scenario of exercise ``number``."""
    def register(fn):
        doc = " ".join((fn.__doc__ or "").split())
        EXERCISES[number].scenarios.append(Scenario(number, name, points, fn, doc, public, tuple(seeds)))
        return fn
    return register
