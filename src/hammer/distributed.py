"""Runs sharded over a Dask cluster (`--cluster`, `run(..., cluster=...)`).

The plan is split into as many shards as the cluster has workers: shard k of N sends the
schedule's slots k-1, k-1+N, ... (as threads already split it), so the merged stream is
as even as one host's. Each worker first checks that its host can carry its shard (the
run's options, open files, ports): one that cannot refuses the run before anything is
sent, naming its host. Then every worker runs the ordinary engine for its shard from one
wall-clock instant chosen ahead (each waits for it on its own monotonic clock) and sends
back its JSON report, histograms included; the client merges them exactly
(hammer.results.merge_reports), with a row per worker. A worker lost mid-run leaves a
partial report: its shard's requests are counted as unknown, never dropped.

The run's options can hold secrets (headers, URL credentials): they travel sealed, in an
object whose repr says nothing, so Dask's logs and dashboards never show them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hammer.errors import ConfigError

START_LEAD_S = 2.5          # the shards start this long after the last pre-flight answer
LATE_START_LIMIT_S = 1.0    # a shard task starting later than this after the instant refuses
PREFLIGHT_TIMEOUT_S = 60.0
WAIT_EXTRA_S = 10.0         # beyond the plan's duration and timeout, before a part is lost
POLL_S = 1.0                # how often the client checks that the workers are still there
LOCAL_PREFIX = "local:"


class ClusterError(Exception):
    """The cluster could not run the plan (a worker's host refused it, no workers)."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where to run: a scheduler's address, or a LocalCluster of N worker processes."""

    address: str | None = None
    local_workers: int = 0
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @property
    def tls(self) -> bool:
        return self.address is not None and self.address.startswith("tls://")

    def security(self) -> Any:
        if not self.tls:
            return None
        from distributed.security import Security

        return Security(tls_ca_file=self.ca_file, tls_client_cert=self.cert_file,
                        tls_client_key=self.key_file, require_encryption=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _dask_tls_configured() -> bool:
    try:
        import dask
    except ImportError:
        return False
    return bool(dask.config.get("distributed.comm.tls.ca-file", None))


def parse_cluster(spec: str, *, ca: str | None = None, cert: str | None = None,
                  key: str | None = None, insecure: bool = False) -> ClusterSpec:
    """`local:N`, `tls://HOST:PORT` (with certificates) or `tcp://HOST:PORT` (loopback,
    or anywhere with insecure=True). Raises ConfigError with a one-line message."""
    if spec.startswith(LOCAL_PREFIX):
        try:
            n = int(spec[len(LOCAL_PREFIX):])
        except ValueError:
            raise ConfigError(f"invalid cluster {spec!r} (use local:N, e.g. local:2)") from None
        if not 1 <= n <= 256:
            raise ConfigError(f"invalid cluster {spec!r}: N must be 1..256")
        return ClusterSpec(local_workers=n)
    address = spec if "://" in spec else f"tcp://{spec}"
    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"invalid cluster {spec!r} (use tls://HOST:PORT, tcp://HOST:PORT "
                          "or local:N)")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ConfigError(f"invalid cluster {spec!r}: no port (Dask's scheduler listens on "
                          "8786 by default)")
    host = parts.hostname
    if parts.scheme == "tcp" and not _is_loopback(host) and not insecure:
        raise ConfigError(f"cluster {spec}: plain TCP to a scheduler that is not on this "
                          "host is unauthenticated and unencrypted; use tls:// with "
                          "--cluster-ca/--cluster-cert/--cluster-key, or say "
                          "--cluster-insecure")
    if parts.scheme == "tls":
        given = [f for f in (ca, cert, key) if f]
        if given and len(given) < 3:
            raise ConfigError("--cluster-ca, --cluster-cert and --cluster-key go together")
        if not given and not _dask_tls_configured():
            raise ConfigError(f"cluster {spec}: TLS needs --cluster-ca, --cluster-cert and "
                              "--cluster-key (or Dask's distributed.comm.tls config)")
        for path in given:
            if not os.path.isfile(path):
                raise ConfigError(f"cluster certificate file {path} not found")
    netloc = f"[{host}]" if ":" in host else host
    return ClusterSpec(address=f"{parts.scheme}://{netloc}:{port}", ca_file=ca,
                       cert_file=cert, key_file=key)


@contextlib.contextmanager
def connect(spec: ClusterSpec) -> Iterator[Any]:
    """A dask.distributed Client for the spec (a LocalCluster is started and stopped)."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("--cluster needs Dask: pip install 'hammer[distributed]'") from None
    if spec.address is None:
        with local_cluster(spec.local_workers) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(spec.address, security=spec.security(), timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {spec.address}: {exc}") \
            from None
    with client:
        yield client


def local_cluster(n_workers: int) -> Any:
    """A LocalCluster for `local:N`: N worker processes of one thread each, listening on
    the loopback only, with no memory monitor (a psutil poll every 100 ms in every
    worker and nanny would take CPU from the shards)."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address="127.0.0.1:0", memory_limit=0)


class Sealed:
    """What the workers run, on its way to them: the options of one run, or a scenario's
    workloads (name, start offset, options). The repr says nothing of them (they may hold
    secrets)."""

    def __init__(self, options: Mapping[str, Any] | None = None, *,
                 workloads: list[tuple[str, int, dict[str, Any]]] | None = None,
                 label: str = "") -> None:
        self.options = dict(options or {})
        self.workloads = workloads        # None: a single run of `options`
        self.label = label

    def __repr__(self) -> str:
        return "<hammer run options>"

    def each(self) -> list[dict[str, Any]]:
        """The options of every run it holds."""
        if self.workloads is None:
            return [self.options]
        return [options for _, _, options in self.workloads]


# ------------------------------------------------------------------ on the workers

def preflight(sealed: Sealed, shard: tuple[int, int]) -> dict[str, Any]:
    """On a worker: can this host run its shard? {"host", "ok", "error"}."""
    from hammer.config import RunConfig
    from hammer.limits import ensure_nofile
    from hammer.runner import configure

    host = socket.gethostname()
    try:
        for options in sealed.each():
            config = configure(**options, shard=shard)
            if isinstance(config, RunConfig):
                loopback = config.unix_socket is not None or config.target.is_loopback
                ensure_nofile(config.connections,
                              float(config.rate_rps) if config.rate_rps is not None else None,
                              churn=config.max_requests_per_conn == 1, loopback=loopback)
    except ConfigError as exc:
        return {"host": host, "ok": False, "error": str(exc)}
    return {"host": host, "ok": True, "error": None}


def run_shard(sealed: Sealed, shard: tuple[int, int], start_epoch_s: float,
              run_id: str) -> dict[str, Any]:
    """On a worker: run one shard from the agreed instant; its report as a dict."""
    from hammer.runner import run

    del run_id  # in the task's key only: each run's tasks are its own
    if time.time() > start_epoch_s + LATE_START_LIMIT_S:
        # a task started this late is a re-run (its worker was lost): never send twice
        return {"refused": f"started {time.time() - start_epoch_s:.1f} s after the instant"}
    cpu0 = time.process_time()
    if sealed.workloads is None:
        data = run(**sealed.options, shard=shard, start_at=start_epoch_s).to_dict()
    else:
        from hammer.runner import configure
        from hammer.workloads import Workload, run_workloads

        workloads = [Workload(name=name, start_ns=start_ns,
                              config=configure(**options, shard=shard))
                     for name, start_ns, options in sealed.workloads]
        data = run_workloads(workloads, sealed.label, start_at=start_epoch_s).to_dict()
    data["host"] = socket.gethostname()
    data["cpu_s"] = round(time.process_time() - cpu0, 6)
    return data


# ------------------------------------------------------------------ on the client

def _planned_slots(sealed: Sealed, shard: tuple[int, int]) -> int | None:
    """How many requests a shard's schedules hold (None: a closed loop's, unknown)."""
    from hammer.runner import configure

    total = 0
    for options in sealed.each():
        plan = configure(**options, shard=shard).plan
        if not plan.open_loop:
            if plan.requests is None:
                return None
            total += plan.requests
        else:
            k, n = shard
            total += len(range(k - 1, plan.n_slots(), n))
    return total


def _budget_s(sealed: Sealed, plans: list[Any]) -> float:
    """How long the client waits for the shards' reports (plans: each run's, in order)."""
    offsets = ([start_ns for _, start_ns, _ in sealed.workloads] if sealed.workloads
               else [0])
    longest = max((offset_ns + (plan.duration_ns or 0) + plan.timeout_ns) / 1e9
                  for plan, offset_ns in zip(plans, offsets, strict=True))
    return START_LEAD_S + longest + WAIT_EXTRA_S


def _wait_for_parts(client: Any, futures: list[Any], workers: list[str],
                    budget_s: float) -> dict[Any, str]:
    """Wait for the shards' futures; those not done, with why: their worker left the
    cluster, or the budget ran out."""
    from distributed import wait

    worker_of = dict(zip(futures, workers, strict=True))
    deadline = time.monotonic() + budget_s
    pending = set(futures)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            return {f: f"no report within {budget_s:.0f} s" for f in pending}
        with contextlib.suppress(TimeoutError):
            wait(list(pending), timeout=min(POLL_S, left))
        pending = {f for f in pending if not f.done()}
        alive = set(client.scheduler_info()["workers"])
        if pending and all(worker_of[f] not in alive for f in pending):
            return {f: "its worker left the cluster mid-run" for f in pending}
    return {}


def run_on_cluster(options: Mapping[str, Any], client: Any,
                   timing: dict[str, float] | None = None,
                   parts_out: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run the plan the options make (as hammer.run takes them) on every worker of the
    client's cluster, a shard each, and return the merged report (a dict). `timing`
    receives merge_s; `parts_out` the workers' own reports."""
    return run_sealed(Sealed(options), client, timing=timing, parts_out=parts_out)


def run_scenario_on_cluster(workloads: list[tuple[str, int, dict[str, Any]]], label: str,
                            client: Any) -> dict[str, Any]:
    """A scenario's workloads (name, start offset, options), each sharded over every
    worker and run concurrently there; the merged total with `workloads` merged apart."""
    return run_sealed(Sealed(workloads=workloads, label=label), client)


def run_sealed(sealed: Sealed, client: Any, timing: dict[str, float] | None = None,
               parts_out: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run what `sealed` holds on every worker, a shard each; the merged report."""
    from distributed import wait

    from hammer.results import add_lost_parts, merge_reports
    from hammer.runner import configure

    # usage errors here, before any worker is asked
    plans = [configure(**options).plan for options in sealed.each()]
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise ClusterError("the Dask cluster has no workers")
    n = len(workers)
    run_id = uuid.uuid4().hex[:12]
    shards = [(k, n) for k in range(1, n + 1)]
    checks = [client.submit(preflight, sealed, shard,
                            key=f"hammer-preflight-{shard[0]}-{run_id}", workers=[addr],
                            allow_other_workers=False, pure=False)
              for shard, addr in zip(shards, workers, strict=True)]
    with contextlib.suppress(TimeoutError):
        wait(checks, timeout=PREFLIGHT_TIMEOUT_S)
    unanswered = [f for f in checks if not f.done()]
    refusals = []
    for future, addr in zip(checks, workers, strict=True):
        if future in unanswered or future.status != "finished":
            refusals.append(f"worker {addr} did not answer its pre-flight")
            continue
        answer = future.result()
        if not answer["ok"]:
            refusals.append(f"host {answer['host']} ({addr}) refuses: {answer['error']}")
    client.cancel(unanswered)
    if refusals:
        raise ClusterError("; ".join(refusals))
    start_epoch_s = time.time() + START_LEAD_S
    futures = [client.submit(run_shard, sealed, shard, start_epoch_s, run_id,
                             key=f"hammer-shard-{shard[0]}-of-{n}-{run_id}",
                             workers=[addr], allow_other_workers=False, pure=False,
                             retries=0)
               for shard, addr in zip(shards, workers, strict=True)]
    budget_s = _budget_s(sealed, plans)
    not_done = _wait_for_parts(client, futures, workers, budget_s)
    reports, names, lost = [], [], []
    for future, shard, addr in zip(futures, shards, workers, strict=True):
        reason = None
        if future in not_done:
            reason = not_done[future]
        elif future.status != "finished":
            exc = future.exception()
            reason = f"{type(exc).__name__}: {exc}" if exc is not None else future.status
        else:
            data = future.result()
            if "refused" in data:
                reason = f"its task was re-run and refused: {data['refused']}"
            else:
                data["worker"] = addr
                reports.append(data)
                names.append(addr)
                continue
        lost.append({"part": f"shard {shard[0]}/{shard[1]}", "worker": addr,
                     "reason": reason, "planned": _planned_slots(sealed, shard)})
    client.cancel(list(not_done))
    if parts_out is not None:
        parts_out.extend(reports)
    if not reports:
        raise ClusterError("every worker was lost: " + "; ".join(
            f"{p['worker']}: {p['reason']}" for p in lost))
    t0 = time.perf_counter()
    merged = merge_reports(reports, names)
    if sealed.workloads is not None:
        merged["workloads"] = {name: merge_reports([r["workloads"][name] for r in reports],
                                                   names)
                               for name, _, _ in sealed.workloads}
        merged["time_series"] = []     # the workloads' seconds do not line up
    if lost:
        add_lost_parts(merged, lost)
    if timing is not None:
        timing["merge_s"] = time.perf_counter() - t0
    return merged


def run_cluster_report(cluster: Any, **options: Any) -> Any:
    """hammer.run(..., cluster=...): the merged report of the plan run on the cluster."""
    from hammer.results import SavedReport

    if isinstance(cluster, str):
        cluster = parse_cluster(cluster)
    if isinstance(cluster, ClusterSpec):
        with connect(cluster) as client:
            return SavedReport(run_on_cluster(options, client))
    return SavedReport(run_on_cluster(options, cluster))


__all__ = ["ClusterError", "ClusterSpec", "connect", "local_cluster", "parse_cluster",
           "run_cluster_report", "run_on_cluster", "run_scenario_on_cluster", "run_sealed"]
