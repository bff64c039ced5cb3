"""hammer: a precise, cheap-per-request HTTP load generator.

    import hammer
    report = hammer.run("http://127.0.0.1:8080/", rate=1000, duration="5s")
    print(report.counts.ok, report.latency_ms["p99"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ConfigError", "Report", "RunConfig", "make_config", "run"]

if TYPE_CHECKING:
    from hammer.config import ConfigError, RunConfig, make_config
    from hammer.metrics import Report
    from hammer.runner import run


def __getattr__(name: str) -> Any:
    # lazy: `hammer --help` must not import uvloop or the core
    if name in ("ConfigError", "RunConfig", "make_config"):
        from hammer import config

        return getattr(config, name)
    if name == "Report":
        from hammer.metrics import Report

        return Report
    if name == "run":
        from hammer.runner import run

        return run
    raise AttributeError(f"module 'hammer' has no attribute {name!r}")
