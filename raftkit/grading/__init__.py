"""Graded exercises: the scenario battery, ``check``/``replay`` for the
notebooks, the ``raftkit grade`` runner and ``raftkit release``.

In an exercise notebook::

    from raftkit.grading import check, replay
    check(2, MyNode)                                   # the public scenarios
    c = replay(2, "vote counting", seed=1); c.show()   # a failing run, again

See ``battery`` (what is graded); how ``raftkit grade`` grades, from the
trusted side down to student code: ``parent`` (a worker process per
notebook; its docstring tells the whole process tree), ``worker`` (one
notebook: limits, the result channel), ``loader`` (the process that loads
the student's classes and forks a run per scenario and seed), ``runs`` (one
run in this process), with ``options``, ``notebook``, ``cells`` and
``procs``; ``report`` (tables, JSON, CSV), ``release``.
"""

from .battery import EXERCISES, KVImpl
from .feedback import check, replay
from .options import GradeOptions
from .parent import grade_notebooks
from .release import release
from .runs import grade_in_process

__all__ = ["check", "replay", "release", "grade_notebooks", "grade_in_process", "GradeOptions", "EXERCISES",
           "KVImpl"]
