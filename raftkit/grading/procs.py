"""Process helpers the grader's processes share: end a process group,
describe how a child ended, cap a process's memory."""

from __future__ import annotations

import contextlib
import os
import signal

__all__ = ["kill_group", "status_text", "limit_memory"]


def kill_group(pid):
    """SIGKILL every process of the group ``pid`` leads (gone already: nothing to do)."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def status_text(status):
    """How a child ended, from its ``waitpid`` status: "exit status 0", "killed by SIGKILL (out of memory?)"."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = " (out of memory?)" if sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT) else ""
        return f"killed by {name}{hint}"
    return f"exit status {os.WEXITSTATUS(status)}"


def limit_memory(mb):
    """Cap this process's address space (``RLIMIT_AS``) at ``mb`` megabytes, never above the hard limit."""
    if not mb:
        return
    import resource
    limit = int(mb) * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
