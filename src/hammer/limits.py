"""Host limits a run depends on: open files (one per connection) and ephemeral ports."""

from __future__ import annotations

import resource
from dataclasses import dataclass

from hammer.config import ConfigError

# descriptors a run needs beside its sockets: epoll instances, stdio, Python's own
FD_OVERHEAD = 64


@dataclass(frozen=True)
class NofilePlan:
    needed: int
    soft_before: int
    soft_after: int
    hard: int


def ensure_nofile(sockets: int) -> NofilePlan:
    """Raise RLIMIT_NOFILE's soft limit to what `sockets` connections need, up to the
    hard limit. Refuses (ConfigError) before anything is sent when the hard limit is short."""
    needed = sockets + FD_OVERHEAD
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard_n = hard if hard != resource.RLIM_INFINITY else 1 << 30
    if needed <= soft:
        return NofilePlan(needed, soft, soft, hard_n)
    if needed > hard_n:
        raise ConfigError(
            f"{sockets:,} connections need {needed:,} open files but the hard limit "
            f"(ulimit -Hn) is {hard_n:,}: raise it (e.g. in /etc/security/limits.conf) "
            f"or use fewer connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return NofilePlan(needed, soft, needed, hard_n)
