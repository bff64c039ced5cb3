"""Command line: flags -> config -> the same run() a Python user calls.

Heavy modules (uvloop, the Cython core, hdrh) are imported inside the commands so that
`hammer --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from hammer import exitcodes

DEMO_RATE = "1000"
DEMO_DURATION = "3s"


class _Group(click.Group):
    """Usage errors become one line on stderr and exit code 2, never a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            _fail_usage(exc.format_message().splitlines()[0] + hint)
        except click.ClickException as exc:
            _fail_usage(exc.format_message())
        except click.Abort:
            click.echo("hammer: aborted", err=True)
            sys.exit(exitcodes.INTERRUPTED)


def _fail_usage(message: str) -> NoReturn:
    click.echo(f"hammer: error: {message}", err=True)
    sys.exit(exitcodes.USAGE)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hammer", prog_name="hammer")
def main() -> None:
    """hammer: precise HTTP load generation (open and closed loop) with honest reports."""


@main.command()
@click.argument("url", required=False)
@click.option("-r", "--rate", "rate", metavar="R",
              help="Open loop at R requests/s (also N/s, N/m, N/h, 0.5, 2k), or a profile: "
                   "1000@30s,2000@30s  ramp:0->5000@60s  sine:mean=2000,amp=1000,period=30s. "
                   "Omit: closed loop.")
@click.option("-c", "--connections", default=None, metavar="N",
              help="Keep-alive connections in total (default 64 open loop, 10 closed loop).")
@click.option("-t", "--threads", default="1", show_default=True, metavar="N",
              help="Worker threads, each with its own event loop and connections.")
@click.option("-d", "--duration", default=None, metavar="D",
              help="Load phase length: 500ms, 10s, 2m (default 10s, or until -n).")
@click.option("-n", "--requests", "requests", default=None, metavar="N",
              help="Stop after N scheduled requests (with -d: whichever comes first).")
@click.option("--timeout", default="10s", show_default=True, metavar="D",
              help="Per-request timeout, from the write to the last response byte.")
@click.option("--spin", default="0", show_default=True, metavar="D",
              help="Open loop: poll instead of sleeping this long before each send, "
                   "trading a busy CPU for microsecond precision (0: never poll).")
@click.option("--pacing", default="auto", show_default=True, metavar="P",
              help="Open loop: auto (a timer wake at most every 100us sends every request "
                   "due by then, each measured from its own time), exact (a wake per "
                   "request), or a quantum such as 100us.")
@click.option("-m", "--method", default="GET", show_default=True, help="HTTP method.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'Name: value'",
              help="Request header, repeatable.")
@click.option("--body", default=None, metavar="TEXT", help="Request body.")
@click.option("--body-file", default=None, metavar="PATH", help="Request body from a file.")
@click.option("--targets", "targets", default=None, metavar="PATH",
              help="Requests from a targets file in vegeta's format ('-' = stdin); "
                   "sent round-robin.")
@click.option("--targets-format", default="http", show_default=True,
              type=click.Choice(["http", "json"]), help="Format of --targets.")
@click.option("--random", "random_order", is_flag=True,
              help="Pick targets at random (seeded) instead of round-robin.")
@click.option("--seed", default=1, show_default=True, type=int,
              help="Seed for --random and --arrivals poisson.")
@click.option("--arrivals", default="uniform", show_default=True,
              type=click.Choice(["uniform", "poisson"]),
              help="Open loop: evenly spaced sends, or Poisson arrivals (exponential gaps, "
                   "--seed) at --rate.")
@click.option("--disable-keepalive", is_flag=True,
              help="A new connection per request (Connection: close; the server closes "
                   "first, so the client does not hold ports in TIME_WAIT).")
@click.option("--max-requests-per-conn", default=None, metavar="N",
              help="Requests per connection; the last asks the server to close.")
@click.option("--connect-timeout", default=None, metavar="D",
              help="Timeout for establishing a connection (default: --timeout).")
@click.option("--unix-socket", default=None, metavar="PATH",
              help="Connect to this Unix socket; the URL gives the Host and path.")
@click.option("--insecure", is_flag=True,
              help="https: do not verify the server's certificate (a warning is printed).")
@click.option("--cacert", default=None, metavar="PATH",
              help="https: trust the CAs in this PEM file instead of the system store.")
@click.option("--cert", default=None, metavar="PATH", help="https: client certificate (PEM).")
@click.option("--key", default=None, metavar="PATH",
              help="https: the client certificate's private key (PEM).")
@click.option("--sni", default=None, metavar="NAME",
              help="https: server name to send and verify (default: the URL's host).")
@click.option("--ok-status", default=None, metavar="LIST",
              help="Statuses counted ok, e.g. 200,204,3xx,404 (default: 2xx and 3xx).")
@click.option("--shard", default=None, metavar="K/N",
              help="Run shard K of N of this plan (slots K-1, K-1+N, ...; -c and a closed "
                   "loop's -n split too): N hosts together send the whole plan, and "
                   "`hammer report` merges their JSON reports exactly.")
@click.option("--qos", default=None, type=click.Choice(["0", "1", "2"]),
              help="mqtt:// URLs: the PUBLISH QoS (default 1). QoS 1 is done at its PUBACK, "
                   "QoS 2 at its PUBCOMP, QoS 0 when written.")
@click.option("--payload", default=None, metavar="TEXT", help="mqtt://: the message.")
@click.option("--payload-file", default=None, metavar="PATH",
              help="mqtt://: the message, from a file.")
@click.option("--payload-size", default=None, metavar="SIZE",
              help="mqtt://: a message of this many bytes (default 64).")
@click.option("--retain", is_flag=True, help="mqtt://: publish with the retain flag.")
@click.option("--client-id-prefix", default=None, metavar="TEXT",
              help="mqtt://: client ids are PREFIX-THREAD-CONNECTION (default: "
                   "hammer-PID-RANDOM, unique per run).")
@click.option("--keepalive", default=None, metavar="D",
              help="mqtt://: the session keep-alive the broker enforces (default 0: none).")
@click.option("--inflight", default=None, metavar="W",
              help="mqtt:// QoS 1/2: messages awaiting their answer per connection (default "
                   "1), capped by an MQTT 5 broker's Receive Maximum.")
@click.option("--batch", default=None, metavar="N",
              help="mqtt://: PUBLISH packets one write carries at most (default auto: all "
                   "those due on a connection at once, up to 16 KiB); 1 writes each packet "
                   "alone, as paho-based clients do.")
@click.option("--e2e", is_flag=True, default=None,
              help="mqtt://: subscribe to what is published (in this process) and measure "
                   "each message end to end, from its intended time to its delivery: "
                   "lost, duplicate and out-of-order counts. The payload's first 24 bytes "
                   "carry a stamp.")
@click.option("--e2e-wait", default=None, metavar="D",
              help="--e2e: after the last message, read deliveries at most this long "
                   "(default 5s; the read ends sooner after 0.5s without one).")
@click.option("--storm", is_flag=True, default=None,
              help="mqtt://: a connection storm: each request opens a new connection and "
                   "session (unique client id), done at its CONNACK (the return code its "
                   "status), then DISCONNECT.")
@click.option("--mqtt-version", default=None, type=click.Choice(["3.1.1", "5"]),
              help="mqtt://: the protocol version (default 3.1.1). With 5, an "
                   "acknowledgement's reason code of 0x80 or more counts as not ok.")
@click.option("--username", default=None, metavar="NAME",
              help="mqtt://: user name (or user@ in the URL).")
@click.option("--password", default=None, metavar="TEXT",
              help="mqtt://: password (or user:password@ in the URL); never shown.")
@click.option("--cluster", "cluster", default=None, metavar="SPEC",
              help="Run the plan sharded over a Dask cluster, a shard per worker, and merge "
                   "the reports: tls://HOST:PORT, tcp://127.0.0.1:PORT, or local:N (N worker "
                   "processes here). Needs pip install 'hammer[distributed]'.")
@click.option("--cluster-ca", default=None, metavar="PATH",
              help="--cluster tls://: the CA that signed the cluster's certificates.")
@click.option("--cluster-cert", default=None, metavar="PATH",
              help="--cluster tls://: this client's certificate.")
@click.option("--cluster-key", default=None, metavar="PATH",
              help="--cluster tls://: this client's private key.")
@click.option("--cluster-insecure", is_flag=True,
              help="Allow plain tcp:// to a scheduler that is not on this host "
                   "(unauthenticated, unencrypted).")
@click.option("--slo", "slo", multiple=True, metavar="'FIGURE<VALUE'",
              help="A threshold the run must meet, repeatable: 'p99<200ms', "
                   "'error_rate<0.1%', 'achieved_rate>=99%'. A failed one: exit code 4.")
@click.option("--hammer", "hammer", default=None, metavar="KIND",
              help="What a request is: http (the default, also HTTPHammer), a Python "
                   "hammer as module:Class, or an installed hammer's name.")
@click.option("--hammer-config", default=None, metavar="JSON|@PATH",
              help="A Python hammer's options: a JSON object, or @file.json.")
@click.option("--scenario", "scenario", default=None, metavar="PATH",
              help="Run a scenario file (JSON or TOML; go-hammer's format too); flags given "
                   "here override it.")
@click.option("--json", "json_path", default=None, metavar="PATH",
              help="Write the JSON report to PATH ('-' for stdout).")
@click.option("--csv", "csv_path", default=None, metavar="PATH",
              help="Write the per-second series as CSV to PATH ('-' for stdout).")
@click.option("--hlog", "hlog_path", default=None, metavar="PATH",
              help="Write an HdrHistogram interval log (a histogram a second) to PATH.")
@click.option("--html", "html_path", default=None, metavar="PATH",
              help="Write a self-contained HTML report (charts inline) to PATH.")
@click.option("-q", "--quiet", is_flag=True, help="No text report (JSON only, if asked).")
@click.option("--live/--no-live", "live_flag", default=None,
              help="The live view on stderr while the run goes (default: on a terminal, "
                   "unless -q or an output goes to stdout).")
@click.pass_context
def run(ctx: click.Context, url: str | None, json_path: str | None, csv_path: str | None,
        hlog_path: str | None, html_path: str | None, quiet: bool, live_flag: bool | None,
        scenario: str | None, **params: Any) -> None:
    """Send load to URL and report what happened.

    With no URL, starts the built-in target server on 127.0.0.1 and runs a short
    demo against it: open loop at 1,000 req/s for 3 s unless told otherwise (-c
    without -r: a closed loop on that many connections).
    """
    from hammer.errors import ConfigError
    from hammer.runner import configure, run_cli

    cluster_options = {name: params.pop(name) for name in
                       ("cluster", "cluster_ca", "cluster_cert", "cluster_key",
                        "cluster_insecure")}
    # only what was given: the rest keeps make_config's defaults, or the scenario's
    given = {name: value for name, value in params.items()
             if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
    cluster = None
    if cluster_options["cluster"] is not None:
        from hammer.distributed import parse_cluster

        try:
            cluster = parse_cluster(cluster_options["cluster"], ca=cluster_options["cluster_ca"],
                                    cert=cluster_options["cluster_cert"],
                                    key=cluster_options["cluster_key"],
                                    insecure=cluster_options["cluster_insecure"])
        except ConfigError as exc:
            _fail_usage(str(exc))
        if given.get("shard") is not None:
            _fail_usage("--shard and --cluster do not go together: --cluster makes the shards")
    try:
        if "hammer_config" in given:
            given["hammer_config"] = _hammer_config(given["hammer_config"])
        if scenario is not None:
            from hammer.scenario import load_scenarios

            loaded = load_scenarios(scenario)
            if len(loaded) > 1:
                sys.exit(_run_workloads(scenario, loaded, url, given, json_path, quiet,
                                        cluster))
            given = loaded[0].run_options(given)
            url = url or given.pop("url", None)
    except ConfigError as exc:
        _fail_usage(str(exc))
    demo = (url is None and scenario is None and given.get("targets") is None
            and given.get("hammer") in (None, "http", "HTTPHammer"))
    if demo and cluster is not None and cluster.address is not None:
        _fail_usage("--cluster with a remote scheduler needs a URL (the built-in target "
                    "runs on this host only)")
    closed_demo = demo and given.get("rate") is None and given.get("connections") is not None
    if demo:
        if not closed_demo:
            given.setdefault("rate", DEMO_RATE)
        if given.get("duration") is None and given.get("requests") is None:
            given["duration"] = DEMO_DURATION
    try:
        # options are checked before anything starts (the demo server included)
        config = configure(url if not demo else "http://127.0.0.1:9/", **given)
    except ConfigError as exc:
        _fail_usage(str(exc))
    demo_server = None
    try:
        if demo:
            from hammer.server import ServeConfig, TargetServer

            demo_server = TargetServer(ServeConfig(host="127.0.0.1", port=0))
            url = demo_server.start_in_thread()
            config = configure(url, **given)
            length = (f"{given['duration']}" if given.get("duration") is not None
                      else f"{given['requests']} requests")
            loop = (f"closed loop on {given['connections']} connections" if closed_demo
                    else f"open loop at {given['rate']}/s")
            click.echo(f"hammer: no URL given: started the built-in target at {url}; "
                       f"{loop} for {length}", err=True)
        if given.get("insecure"):
            click.echo("hammer: warning: --insecure: TLS certificates are not verified",
                       err=True)
        code = run_cli(config, json_path=json_path, quiet=quiet, csv_path=csv_path,
                       hlog_path=hlog_path, html_path=html_path, live_flag=live_flag,
                       cluster=(cluster, {"url": url, **given}) if cluster else None)
    except ConfigError as exc:
        _fail_usage(str(exc))
    finally:
        if demo_server is not None:
            demo_server.stop()
    sys.exit(code)


def _run_workloads(path: str, loaded: list[Any], url: str | None, given: dict[str, Any],
                   json_path: str | None, quiet: bool, cluster: Any = None) -> int:
    """A scenario's workloads, run concurrently: each reported apart, then the total
    (on a cluster: each workload sharded over every worker)."""
    from hammer.errors import ConfigError
    from hammer.reporters import render_text, write_json_atomic
    from hammer.runner import configure, exit_code_for
    from hammer.workloads import Workload, run_workloads

    workloads, plain = [], []
    for item in loaded:
        options = item.run_options(given)
        target = url or options.pop("url", None)
        try:
            config = configure(target, **options)
        except ConfigError as exc:
            raise ConfigError(f"{path}: scenarios.{item.name}: {exc}") from None
        workloads.append(Workload(name=item.name, start_ns=item.start_ns, config=config))
        plain.append((item.name, item.start_ns, {"url": target, **options}))
    if cluster is not None:
        from hammer.distributed import ClusterError, connect, run_scenario_on_cluster

        try:
            with connect(cluster) as client:
                data = run_scenario_on_cluster(plain, f"scenario:{path}", client)
        except ClusterError as exc:
            click.echo(f"hammer: error: {exc}", err=True)
            return exitcodes.FAILED
        interrupted, saturated = data.get("interrupted"), bool(data.get("saturated"))
    else:
        result = run_workloads(workloads, f"scenario:{path}")
        data = result.to_dict()
        interrupted, saturated = result.interrupted, bool(result.saturation())
    if not quiet:
        out = sys.stderr if json_path == "-" else sys.stdout
        for name, report in data["workloads"].items():
            out.write(f"== workload {name} ==\n" + render_text(report) + "\n")
        out.write("== total of every workload ==\n" + render_text(data))
        out.flush()
    if json_path is not None:
        try:
            write_json_atomic(data, json_path)
        except OSError as exc:
            click.echo(f"hammer: error: {exc}", err=True)
            return exitcodes.FAILED
    failed = any(not s["passed"] for r in data["workloads"].values() for s in r["slo"])
    return exit_code_for(interrupted, saturated, failed, bool(data.get("partial")))


def _probe(url: str | None, rate: str | None, connections: str | None, closed: bool,
           factor: float, step: str, max_time: str, max_value: str | None, threads: str,
           json_path: str | None) -> int:
    from hammer import units
    from hammer.errors import ConfigError
    from hammer.probe import probe, render_probe
    from hammer.reporters import write_json_atomic

    if url is None:
        _fail_usage("--probe needs a URL")
    try:
        mode = "closed" if closed else "open"
        if closed:
            start = float(units.parse_count(connections, name="connections")
                          if connections else 1)
            top = float(units.parse_count(max_value, name="max") if max_value else 100_000)
        else:
            start = float(units.parse_rate(rate)) if rate else 1000.0
            top = float(units.parse_rate(max_value)) if max_value else 1_000_000.0
        step_s = units.parse_duration_ns(step) / 1e9
        max_time_s = units.parse_duration_ns(max_time) / 1e9
        n_threads = units.parse_count(threads, name="threads")
        conns = (units.parse_count(connections, name="connections")
                 if connections and not closed else None)
        import hammer

        hammer.make_config(url, requests=1)  # the URL is checked before any load
    except (ValueError, ConfigError) as exc:
        _fail_usage(str(exc))

    def show(s: Any) -> None:
        if json_path != "-":
            click.echo(f"  step: {s.asked:,.0f} asked, {s.throughput_rps:,.0f}/s completed, "
                       f"{'held' if s.broke is None else 'broke'}", err=True)

    result = probe(url, mode=mode, start=start, factor=factor, step_s=step_s,
                   max_time_s=max_time_s, max_value=top, connections=conns,
                   threads=n_threads, on_step=show)
    out = sys.stderr if json_path == "-" else sys.stdout
    out.write(render_probe(result, url))
    if json_path is not None:
        try:
            write_json_atomic(result.to_dict(), json_path)
        except OSError as exc:
            click.echo(f"hammer: error: {exc}", err=True)
            return exitcodes.FAILED
    return exitcodes.OK if result.knee is not None else exitcodes.FAILED


def _hammer_config(text: str) -> dict[str, Any]:
    """--hammer-config: a JSON object, or @PATH of a file holding one."""
    import json

    from hammer.errors import ConfigError

    where = "--hammer-config"
    if text.startswith("@"):
        where = text[1:]
        try:
            with open(where, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read {where}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: a JSON object is needed, not {type(value).__name__}")
    return value


@main.command()
@click.argument("logs", nargs=-1, required=True)
@click.option("--target", "target_url", default=None, metavar="URL",
              help="Where to send the requests (their paths come from the logs).")
@click.option("--speed", default=1.0, show_default=True, type=float, metavar="X",
              help="Replay X times as fast as the original traffic.")
@click.option("--spread", default="even", show_default=True,
              type=click.Choice(["even", "poisson", "none"]),
              help="Logs stamped to the second: spread each second's requests evenly, as "
                   "Poisson arrivals, or keep them as bursts.")
@click.option("--allow-unsafe", is_flag=True,
              help="Also replay POST, PUT, PATCH and DELETE (sent with an empty body, or "
                   "one from --body-dir).")
@click.option("--body-dir", default=None, metavar="DIR",
              help="Bodies for replayed unsafe requests: DIR/METHOD/PATH (query dropped), "
                   "e.g. DIR/POST/api/orders.")
@click.option("--keep-host", is_flag=True,
              help="Send the Host each request was logged with (JSON host, or a vhost "
                   "field), instead of the target's.")
@click.option("--method", "methods", multiple=True, metavar="M",
              help="Replay only these methods (repeatable).")
@click.option("--status", "statuses", default=None, metavar="LIST",
              help="Replay only lines whose original status is in LIST (e.g. 2xx,404).")
@click.option("--include", default=None, metavar="REGEX", help="Replay only matching paths.")
@click.option("--exclude", default=None, metavar="REGEX", help="Skip matching paths.")
@click.option("--from", "from_", default=None, metavar="D",
              help="Start this far into the log (from its first line).")
@click.option("--to", default=None, metavar="D", help="End this far into the log.")
@click.option("--max-gap", default=None, metavar="D",
              help="Shorten idle stretches of the original longer than D to D.")
@click.option("--loop", "loops", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Replay the timeline N times, back to back.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'Name: value'",
              help="A header to add to every request (redacted in reports), repeatable.")
@click.option("-c", "--connections", default=None, metavar="N",
              help="Keep-alive connections (default 64).")
@click.option("--timeout", default="10s", show_default=True, metavar="D",
              help="Per-request timeout.")
@click.option("--seed", default=1, show_default=True, type=int, help="For --spread poisson.")
@click.option("--dry-run", is_flag=True,
              help="Send nothing: say what the logs hold and how long the replay takes.")
@click.option("--json", "json_path", default=None, metavar="PATH",
              help="Write the JSON report to PATH ('-' for stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No text report.")
def replay(logs: tuple[str, ...], target_url: str | None, speed: float, spread: str,
           allow_unsafe: bool, body_dir: str | None, keep_host: bool,
           methods: tuple[str, ...], statuses: str | None,
           include: str | None, exclude: str | None, from_: str | None, to: str | None,
           max_gap: str | None, loops: int, headers: tuple[str, ...],
           connections: str | None, timeout: str, seed: int, dry_run: bool,
           json_path: str | None, quiet: bool) -> None:
    """Replay the requests of access logs (nginx/Apache common or combined, optional
    $msec, JSON lines; gzip) against --target, each at its original time / speed."""
    import os
    import re

    from hammer import units
    from hammer.errors import ConfigError
    from hammer.replay import (
        Filters,
        build_timeline,
        log_paths,
        render_dry_run,
        replay_config,
    )
    from hammer.runner import run_cli

    def seconds(text: str | None, what: str) -> float | None:
        if text is None:
            return None
        try:
            return units.parse_duration_ns(text, allow_zero=True) / 1e9
        except ValueError as exc:
            raise ConfigError(f"{what}: {exc}") from None

    def pattern(text: str | None, what: str) -> re.Pattern[str] | None:
        try:
            return re.compile(text) if text is not None else None
        except re.error as exc:
            raise ConfigError(f"{what}: invalid regular expression: {exc}") from None

    try:
        filters = Filters(
            methods=frozenset(m.upper() for m in methods) or None,
            statuses=frozenset(x.strip().lower() for x in statuses.split(","))
            if statuses else None,
            include=pattern(include, "--include"), exclude=pattern(exclude, "--exclude"),
            start_s=seconds(from_, "--from"), end_s=seconds(to, "--to"))
        timeline = build_timeline(log_paths(logs), speed=speed, spread=spread, seed=seed,
                                  allow_unsafe=allow_unsafe, filters=filters,
                                  max_gap_s=seconds(max_gap, "--max-gap"), loops=loops,
                                  keep_host=keep_host)
        if dry_run:
            click.echo(render_dry_run(timeline), nl=False)
            sys.exit(exitcodes.OK)
        if target_url is None:
            raise ConfigError("--target URL is needed (or --dry-run)")
        options: dict[str, Any] = {"timeout": timeout}
        if connections is not None:
            options["connections"] = connections
        if body_dir is not None and not os.path.isdir(body_dir):
            raise ConfigError(f"--body-dir {body_dir}: no such directory")
        config = replay_config(timeline, target_url, headers=headers, body_dir=body_dir,
                               **options)
    except ConfigError as exc:
        _fail_usage(str(exc))
    if not quiet and json_path != "-":
        click.echo(render_dry_run(timeline), nl=False, err=True)
    sys.exit(run_cli(config, json_path=json_path, quiet=quiet))


@main.command()
@click.argument("files", nargs=-1, required=True, metavar="REPORT.json...")
@click.option("--compare", is_flag=True,
              help="Two reports side by side (before, after): each figure, its difference "
                   "and the change in percent.")
@click.option("--json", "json_path", default=None, metavar="PATH",
              help="Write the (merged) JSON report to PATH ('-' for stdout).")
@click.option("--csv", "csv_path", default=None, metavar="PATH",
              help="Write the per-second series as CSV to PATH ('-' for stdout).")
@click.option("--html", "html_path", default=None, metavar="PATH",
              help="Write the (merged) report as self-contained HTML to PATH.")
@click.option("-q", "--quiet", is_flag=True, help="No text report.")
def report(files: tuple[str, ...], compare: bool, json_path: str | None,
           csv_path: str | None, html_path: str | None, quiet: bool) -> None:
    """Re-render saved JSON reports; merge several of one plan into one, exactly.

    One REPORT.json: rendered again (text, or the outputs asked for). Several: reports of
    the same plan, run as shards (--shard K/N) or on several hosts, merged into one by
    adding counts and histograms, with a row per part. The exit code is the run's
    (3 saturated, 4 an SLO failed). With --compare, two reports: before and after.
    """
    from hammer.errors import ConfigError
    from hammer.html import write_html_atomic
    from hammer.reporters import render_compare, render_text, write_csv_atomic, write_json_atomic
    from hammer.results import compare_reports, load_report, merge_reports
    from hammer.runner import exit_code_for

    try:
        reports = [load_report(path) for path in files]
        if compare:
            if len(reports) != 2:
                raise ConfigError(f"--compare takes two reports (before, after), not "
                                  f"{len(reports)}")
            rows = compare_reports(reports[0], reports[1])
            if json_path is not None:
                write_json_atomic({"before": files[0], "after": files[1], "figures": rows},
                                  json_path)
            if not quiet:
                click.echo(render_compare(rows, Path(files[0]).name, Path(files[1]).name),
                           nl=False)
            sys.exit(exitcodes.OK)
        data = reports[0] if len(reports) == 1 else merge_reports(reports, list(files))
    except ConfigError as exc:
        _fail_usage(str(exc))
    except OSError as exc:
        click.echo(f"hammer: error: {exc}", err=True)
        sys.exit(exitcodes.FAILED)
    code = exit_code_for(data.get("interrupted"), bool(data.get("saturated")),
                         any(not s.get("passed") for s in data.get("slo") or ()),
                         bool(data.get("partial")))
    if not quiet:
        out = sys.stderr if "-" in (json_path, csv_path, html_path) else sys.stdout
        out.write(render_text(data))
        out.flush()
    for path, write in ((json_path, write_json_atomic), (csv_path, write_csv_atomic),
                        (html_path, write_html_atomic)):
        if path is None:
            continue
        try:
            write(data, path)
        except OSError as exc:
            click.echo(f"hammer: error: {exc}", err=True)
            code = exitcodes.FAILED
    sys.exit(code)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("-p", "--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to bind (0 = any free port).")
@click.option("--status", default=200, show_default=True, type=click.IntRange(100, 999),
              help="Response status code.")
@click.option("--body-size", default="0", show_default=True, metavar="BYTES",
              help="Response body size (e.g. 0, 128, 64KiB).")
@click.option("--delay", default="0ms", show_default=True, metavar="D",
              help="Fixed delay before each response (e.g. 20ms).")
@click.option("--stats-interval", default=None, metavar="D",
              help="Print connection and request counts every D.")
def serve(host: str, port: int, status: int, body_size: str, delay: str,
          stats_interval: str | None) -> None:
    """Run the built-in target server (uvloop + httptools) until interrupted.

    It prints its URL first. It counts connections, requests and bytes; the counts
    are served as JSON at /_hammer/stats (those control requests are not counted).
    """
    from hammer import units
    from hammer.server import ServeConfig, serve_forever

    try:
        config = ServeConfig(
            host=host,
            port=port,
            status=status,
            body_bytes=units.parse_size(body_size),
            delay_ns=units.parse_duration_ns(delay, allow_zero=True),
            stats_interval_ns=(
                units.parse_duration_ns(stats_interval) if stats_interval else None
            ),
        )
    except ValueError as exc:
        _fail_usage(str(exc))
    sys.exit(serve_forever(config))


@main.command()
@click.argument("url", required=False)
@click.option("-r", "--rate", "rate", metavar="R", help="A plan's open-loop rate.")
@click.option("-c", "--connections", default=None, metavar="N", help="A plan's connections.")
@click.option("--churn", is_flag=True,
              help="The plan opens a new connection per request (no keep-alive).")
@click.option("--probe", is_flag=True,
              help="Ramp real load against URL until the first limit breaks (open loop: the "
                   "rate from -r; --closed: the connections) and report the knee.")
@click.option("--closed", is_flag=True, help="--probe: ramp connections (closed loop).")
@click.option("--factor", default=2.0, show_default=True, type=click.FloatRange(1.1, 10),
              help="--probe: each step asks this much more than the last.")
@click.option("--step", "step", default="2s", show_default=True, metavar="D",
              help="--probe: the length of each step.")
@click.option("--max-time", default="60s", show_default=True, metavar="D",
              help="--probe: stop after this long in all.")
@click.option("--max", "max_value", default=None, metavar="N",
              help="--probe: the most to ask (default 1M req/s, or 100k connections).")
@click.option("-t", "--threads", default="1", show_default=True, metavar="N",
              help="--probe: worker threads.")
@click.option("--json", "json_path", default=None, metavar="PATH",
              help="--probe: write the steps as JSON ('-' for stdout).")
def limits(url: str | None, rate: str | None, connections: str | None, churn: bool,
           probe: bool, closed: bool, factor: float, step: str, max_time: str,
           max_value: str | None, threads: str, json_path: str | None) -> None:
    """Show the host's limits for load generation, and whether a plan fits.

    Open files, ephemeral ports and the new connections per second they sustain,
    tcp_tw_reuse, somaxconn, conntrack, the clock and its cost, timer slack, CPUs.
    With --connections (and --rate), judges that plan and says what to change.
    With --probe, finds how far this host goes against URL.
    """
    if probe:
        sys.exit(_probe(url, rate, connections, closed, factor, step, max_time, max_value,
                        threads, json_path))
    from hammer import units
    from hammer.config import (
        DEFAULT_CLOSED_CONNECTIONS,
        DEFAULT_OPEN_CONNECTIONS,
        ConfigError,
        make_target,
    )
    from hammer.limits import check_plan, clock_read_ns, read_host_limits, render_limits

    try:
        rate_rps = float(units.parse_rate(rate)) if rate is not None else None
        n_conns = (units.parse_count(connections, name="connections")
                   if connections is not None else None)
        target = make_target(url)[0] if url is not None else None
    except (ValueError, ConfigError) as exc:
        _fail_usage(str(exc))
    host = read_host_limits()
    verdict = plan_text = None
    if n_conns is not None or rate_rps is not None or url is not None:
        if n_conns is None:
            n_conns = DEFAULT_OPEN_CONNECTIONS if rate_rps else DEFAULT_CLOSED_CONNECTIONS
        loopback = target is not None and target.is_loopback
        verdict = check_plan(host, n_conns, rate_rps, churn=churn, loopback=loopback)
        plan_text = (f"{n_conns:,} connections"
                     + (f", {rate_rps:,g} req/s" if rate_rps is not None else ", closed loop")
                     + (", a new connection per request" if churn else ", keep-alive")
                     + (f" to {url}" if url else ""))
    click.echo(render_limits(host, verdict, clock_read_ns(), plan_text), nl=False)
    sys.exit(exitcodes.OK if verdict is None or verdict.fits else exitcodes.FAILED)
