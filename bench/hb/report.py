"""The progress line of a run and the table of a scenario."""

from __future__ import annotations

import textwrap
from typing import Any

from .clients import HAMMER_CLIENTS, base_name
from .procs import SERVER_CPU
from .runs import RunRecord
from .scenarios import THREADS_CPU_LIMIT, Scenario
from .spacing import TRIM_NS
from .stats import NOISE_FRAC, ClientSummary, agreement, fmt, paired, pct


def describe(r: RunRecord) -> str:
    if not r.ok:
        return f"FAILED: {r.failure}"
    agree = ("server agrees" if r.server_minus_client == 0
             else f"server-client {r.server_minus_client:+,}"
             if r.server_minus_client is not None else "server count unknown")
    busy = r.machine.get("server_busy_frac")
    noisy = (f", NOISY: others used or the host stole {r.noise:.0%} of a core"
             if r.noise > NOISE_FRAC else "")
    return (f"{r.client_completed:,} req, {r.requests_per_s or 0:,.0f}/s, CPU "
            f"{r.cpu_user_s + r.cpu_sys_s:.2f}s = {r.cpu_us_per_request:.2f} µs/req, "
            f"RSS {r.peak_rss_kib / 1024:.1f} MB, {agree}, nginx busy "
            f"{fmt(pct(busy), '.0f')}%{noisy}")


def ratio_line(a: ClientSummary, b: ClientSummary) -> str:
    """a against b: CPU-µs/req (and net*: a's against b's net*, or b's raw figure when b
    has none) and req/s, as the ratio of the medians and paired round by round."""
    assert a.cpu_us_median is not None and b.cpu_us_median is not None
    rps = a.rps_median / b.rps_median if a.rps_median is not None and b.rps_median else None
    b_net = b.cpu_us_net_median if b.cpu_us_net_median is not None else b.cpu_us_median
    net = a.cpu_us_net_median / b_net if a.cpu_us_net_median is not None and b_net else None
    return (f"{a.client}/{b.client}: CPU-µs/req x{a.cpu_us_median / b.cpu_us_median:.2f} "
            f"(net* x{fmt(net, '.2f')}), req/s x{fmt(rps, '.2f')}" + paired(a, b))


def baseline_ratios(summaries: list[ClientSummary]) -> list[str]:
    """Each hammer client against its twin on the --baseline build (below 1: the change
    made hammer cheaper)."""
    by = {s.client: s for s in summaries}
    out = []
    for s in summaries:
        base = by.get(base_name(s.client)) if s.client in HAMMER_CLIENTS else None
        if base is not None and s.cpu_us_median and base.cpu_us_median:
            out.append(ratio_line(s, base))
    return out


def live_ratios(summaries: list[ClientSummary]) -> list[str]:
    """hammer with its live view on against hammer without (above 1: the view costs)."""
    by = {s.client: s for s in summaries}
    live, plain = by.get("hammer-live"), by.get("hammer")
    if live is None or plain is None or not live.cpu_us_median or not plain.cpu_us_median:
        return []
    return [ratio_line(live, plain)]


def render_table(sc: Scenario, summaries: list[ClientSummary],
                 reference: dict[str, ClientSummary] | None) -> str:
    lines = [f"== {sc.name}: {sc.description}"]
    header = (f"  {'client':<17} {'req/s':>10} {'CPU-µs/req (min-max)':>24} {'net*':>6} "
              f"{'RSS MB':>7} {'p50 ms':>7} {'p99 ms':>7} {'nginx%':>6}  "
              f"{'server-client':<14} runs")
    lines.append(header)
    for s in summaries:
        cpu = (f"{fmt(s.cpu_us_median, '.2f')} ({fmt(s.cpu_us_min, '.2f')}-"
               f"{fmt(s.cpu_us_max, '.2f')})") if s.cpu_us_median is not None else "-"
        lines.append(
            f"  {s.client:<17} {fmt(s.rps_median, ',.0f'):>10} {cpu:>24} "
            f"{fmt(s.cpu_us_net_median, '.2f'):>6} {fmt(s.rss_mb_peak, '.1f'):>7} "
            f"{fmt(s.p50_ms_median, '.3f'):>7} "
            f"{fmt(s.p99_ms_median, '.3f'):>7} "
            f"{fmt(pct(s.server_busy_median), '.0f'):>6}  "
            f"{agreement(s.server_minus_client):<14} "
            f"{s.ok_runs}/{s.runs}" + (f" ({s.noisy_runs} noisy)" if s.noisy_runs else ""))
    for s in summaries:
        if s.extra:
            e = s.extra
            lines.append(
                f"  {s.client}: achieved {fmt(e['achieved_rps_median'], ',.0f')}/s, "
                f"late max {e['late_max']:,}, unsent max {e['unsent_max']:,}, send-lag p99 "
                f"{fmt(e['send_lag_p99_ms_median'], '.3f')} ms, server vs sent "
                f"{agreement(e['server_vs_sent'])}")
        for f in s.failures:
            lines.append(f"  {s.client} {f}")
    by = {s.client: s for s in summaries}
    hammers = [s for s in summaries if s.client in HAMMER_CLIENTS and s.cpu_us_median]
    peers = [s for s in summaries if not s.client.startswith("hammer") and s.cpu_us_median]
    for h in hammers:
        for p in peers:
            if h.client[-3:-1] == p.client[-3:-1] == "-t" and h.client[-1] != p.client[-1]:
                continue  # threads-2: compare like thread counts only
            lines.append(f"  {ratio_line(h, p)}")
    lines.extend(f"  {line}" for line in baseline_ratios(summaries))
    if sc.name == "threads-2":
        for tool in ("hammer", "hammer-base", "wrk"):
            one, two = by.get(f"{tool}-t1"), by.get(f"{tool}-t2")
            if not (one and two and one.cpu_us_median and two.cpu_us_median):
                continue
            growth = two.cpu_us_median / one.cpu_us_median
            line = f"  {tool} -t 2 vs -t 1: CPU-µs/req x{growth:.2f}{paired(two, one)}"
            if tool == "hammer":  # the target; wrk's pair is the reference
                line += (f" (limit x{THREADS_CPU_LIMIT:.2f}): "
                         + ("OK" if growth <= THREADS_CPU_LIMIT else "FAIL (> +10 %)"))
            lines.append(line)
    if sc.name == "closed-10k" and reference:
        for s in summaries:
            ref = reference.get(s.client)
            if ref and ref.cpu_us_median and s.cpu_us_median and ref.rss_mb_peak and \
                    s.rss_mb_peak:
                lines.append(
                    f"  {s.client} vs its closed-64: CPU-µs/req x"
                    f"{s.cpu_us_median / ref.cpu_us_median:.2f}, peak RSS "
                    f"{ref.rss_mb_peak:.1f} -> {s.rss_mb_peak:.1f} MB")
    if any(s.noisy_runs for s in summaries):
        lines.append(f"  noisy: other processes used, or the hypervisor stole (steal time), "
                     f"> {NOISE_FRAC:.0%} of the server's or the client's core during the "
                     "run: figures unreliable")
    if any(s.cpu_us_net_median is not None for s in summaries):
        lines.append("  net*: hammer's CPU minus its fixed per-run cost (interpreter start-up, "
                     "imports, report; see the 'fixed cost' line), per request")
    lines.extend(f"  note: {n}" for n in sc.notes)
    return "\n".join(lines)


def render_spacing(rows: list[dict[str, Any]], port: int) -> list[str]:
    """The --spacing block of an open-loop scenario (rows: hb.spacing.summarise)."""
    lines = [
        f"  spacing, seen from outside (tcpdump on lo, pinned to CPU {SERVER_CPU}: request "
        f"segments to port {port}; first and last {TRIM_NS // 1_000_000} ms left out; "
        "medians over rounds):",
        f"  {'client':<17} {'target/s':>9} {'seen/s':>9} {'per-ms p99':>10} {'>1.5x ms':>8} "
        f"{'empty ms':>8} {'gap p50 µs':>10} {'gap p99 µs':>10} {'CPU %core':>9} "
        f"{'net*':>6}  {'cap-client':<11} {'cap-nginx':<10} dropped"]
    for r in rows:
        if not r["captures"]:
            lines.append(f"  {r['client']:<17} no capture: {r['why']}")
            continue
        lines.append(
            f"  {r['client']:<17} {fmt(r['target_rps'], ',.0f'):>9} "
            f"{fmt(r['rate_seen_rps'], ',.0f'):>9} {fmt(r['per_ms_p99'], '.0f'):>10} "
            f"{fmt(pct(r['crowded_ms_frac']), '.1f') + '%':>8} "
            f"{fmt(pct(r['empty_ms_frac']), '.1f') + '%':>8} "
            f"{fmt(r['gap_us_p50'], '.1f'):>10} {fmt(r['gap_us_p99'], '.1f'):>10} "
            f"{fmt(pct(r['cpu_core_frac']), '.1f') + '%':>9} "
            f"{fmt(pct(r['cpu_core_frac_net']), '.1f'):>6}  "
            f"{agreement(r['capture_minus_client']):<11} "
            f"{agreement(r['capture_minus_server']):<10} {r['dropped_by_kernel']:,}")
    legend = (
        "per-ms p99: the 99th percentile of requests per 1 ms window; >1.5x ms: windows "
        "holding more than 1.5x the mean (clumps); empty ms: windows with none; gap: between "
        "consecutive requests, all connections together; CPU %core: the client's CPU over "
        "its wall time (net*: hammer's minus its fixed per-run cost, over the load phase); "
        "cap-client: requests captured minus the client's count of sent (wrk2: completed), "
        "per round; cap-nginx: minus nginx's; dropped: by the kernel, per tcpdump. The "
        "packet tap runs in the sender's context: its per-packet cost is in the client's "
        "CPU in these runs.")
    lines.extend(textwrap.wrap(legend, 98, initial_indent="  ", subsequent_indent="  "))
    return lines
