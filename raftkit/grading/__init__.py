"""Graded exercises: the scenario battery, ``check``/``replay`` for the
notebooks, the ``raftkit grade`` runner and ``raftkit release``.

In an exercise notebook::

    from raftkit.grading import check, replay
    check(2, MyNode)                                   # the public scenarios
    c = replay(2, "vote counting", seed=1); c.show()   # a failing run, again

See ``battery`` (what is graded), ``runner`` (how: processes, limits,
the result channel), ``report`` (tables, JSON, CSV), ``release``.
"""

from .battery import EXERCISES, KVImpl
from .feedback import check, replay
from .release import release
from .runner import GradeOptions, grade_in_process, grade_notebooks

__all__ = ["check", "replay", "release", "grade_notebooks", "grade_in_process", "GradeOptions", "EXERCISES",
           "KVImpl"]
