"""The printed report: a table per mode, time to first token, Liutong against direct, the floor and LiteLLM."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from bench.common import DIRECT, FLOOR, LITELLM_PREFIX, LIUTONG
from bench.load import TtftResult, WrkResult

TARGETS = {"throughput": 0.8, "added_p50_ms": 1.0, "added_p99_ms": 5.0, "vs_litellm": 50.0}
MODES = ("non-streaming", "streaming")


@dataclass
class Results:
    plain: dict[str, WrkResult] = field(default_factory=dict)
    stream: dict[str, WrkResult] = field(default_factory=dict)
    ttft: dict[str, TtftResult] = field(default_factory=dict)
    responses_ttft: dict[str, TtftResult] = field(default_factory=dict)  # the Responses API, streamed
    skipped: dict[str, str] = field(default_factory=dict)

    def by_mode(self) -> tuple[tuple[str, dict[str, WrkResult]], ...]:
        return (MODES[0], self.plain), (MODES[1], self.stream)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report(results: Results, args: argparse.Namespace) -> None:
    rounds = f", median of {args.rounds} interleaved rounds" if args.rounds > 1 else ""
    print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration:g}s per target{rounds}, mock upstream latency "
          f"{args.latency_ms:g} ms, {os.cpu_count()} CPUs: "
          + ("shared by load generator, proxies and mock" if getattr(args, "no_pin", True)
             else "each proxy pinned alone on one, load generator, mock and Azurite on the other(s)"))
    for title, table in (("non-streaming chat completions", results.plain),
                         ("streaming chat completions (wrk: whole SSE response)", results.stream)):
        print_wrk_table(title, table)
    if results.ttft:
        print(f"\ntime to first token (aiohttp, {args.ttft_requests} streamed requests, {args.ttft_concurrency} "
              "concurrent)")
        print(f"  {'target':22} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for name, t in results.ttft.items():
            print(f"  {name:22} {t.p50_ms:8.2f} {t.p99_ms:8.2f} {t.errors:7d}")
        for name, t in results.responses_ttft.items():
            print(f"  {name + ' Responses':22} {t.p50_ms:8.2f} {t.p99_ms:8.2f} {t.errors:7d}")
    summarize(results)
    summarize_floor(results)
    for name, reason in results.skipped.items():
        print(f"\n{name}: not measured: {reason}")


def print_wrk_table(title: str, table: dict[str, WrkResult]) -> None:
    print(f"\n{title}")
    print(f"  {'target':22} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}"
          f" {'CPU ms/req':>11}")
    for name, r in table.items():
        cpu = f"{r.cpu_ms:11.3f}" if r.cpu_ms is not None else f"{'':11}"
        print(f"  {name:22} {r.rps:9.0f} {r.p50_ms:8.2f} {r.p90_ms:8.2f} {r.p99_ms:8.2f} {r.max_ms:8.1f} "
              f"{r.errors + r.non2xx:7d} {cpu}")


def litellm_name(results: Results) -> str | None:
    return next((n for n in results.plain if n.startswith(LITELLM_PREFIX)), None)


def summarize(results: Results) -> None:
    """Liutong against the issue's targets: direct throughput and added latency, and LiteLLM."""
    if LIUTONG not in results.plain:
        return
    litellm = litellm_name(results)
    print("\nLiutong against the targets of the issue")
    for title, table in results.by_mode():
        if LIUTONG not in table or DIRECT not in table:
            continue
        lt, d = table[LIUTONG], table[DIRECT]
        print(f"  {title}: {_against_direct(lt, d)}")
        if lt.cpu_ms and d.cpu_ms:
            print(f"  {title}: {_cpu_against_mock(lt, d, table.get(litellm) if litellm else None)}")
        if litellm and litellm in table:
            ll = table[litellm]
            print(f"  {title}: throughput {ratio(lt.rps, ll.rps)} LiteLLM "
                  f"({verdict(lt.rps >= TARGETS['vs_litellm'] * ll.rps)} ≥ {TARGETS['vs_litellm']:g}x); "
                  f"p50 {ratio(lt.p50_ms, ll.p50_ms)} LiteLLM's")
    if LIUTONG in results.ttft and DIRECT in results.ttft:
        print(f"  {_ttft_against_direct(results, litellm)}")
    if LIUTONG in results.responses_ttft and DIRECT in results.responses_ttft:
        lt_r, d_r = results.responses_ttft[LIUTONG], results.responses_ttft[DIRECT]
        added50, added99 = lt_r.p50_ms - d_r.p50_ms, lt_r.p99_ms - d_r.p99_ms
        print(f"  Responses API time to first text delta: added p50 {added50:+.2f} ms "
              f"({verdict(added50 <= TARGETS['added_p50_ms'])}), added p99 {added99:+.2f} ms "
              f"({verdict(added99 <= TARGETS['added_p99_ms'])})")


def _against_direct(lt: WrkResult, d: WrkResult) -> str:
    added50, added99 = lt.p50_ms - d.p50_ms, lt.p99_ms - d.p99_ms
    enough = lt.rps >= TARGETS["throughput"] * d.rps
    return (f"throughput {ratio(lt.rps, d.rps)} direct ({verdict(enough)} ≥ {TARGETS['throughput']}x); "
            f"added p50 {added50:+.2f} ms ({verdict(added50 <= TARGETS['added_p50_ms'])}"
            f" ≤ {TARGETS['added_p50_ms']:g} ms), added p99 {added99:+.2f} ms "
            f"({verdict(added99 <= TARGETS['added_p99_ms'])} ≤ {TARGETS['added_p99_ms']:g} ms)")


def _cpu_against_mock(lt: WrkResult, d: WrkResult, ll: WrkResult | None) -> str:
    assert lt.cpu_ms and d.cpu_ms
    line = (f"Liutong CPU {lt.cpu_ms:.3f} ms/request = {ratio(lt.cpu_ms, d.cpu_ms)} the mock's "
            f"(one Liutong process tops out near {1000 / lt.cpu_ms:.0f} req/s per core)")
    if ll is not None and ll.cpu_ms:
        line += f"; LiteLLM {ratio(ll.cpu_ms, lt.cpu_ms)} Liutong's"
    return line


def _ttft_against_direct(results: Results, litellm: str | None) -> str:
    lt_t, d_t = results.ttft[LIUTONG], results.ttft[DIRECT]
    added50, added99 = lt_t.p50_ms - d_t.p50_ms, lt_t.p99_ms - d_t.p99_ms
    line = (f"time to first token: added p50 {added50:+.2f} ms ({verdict(added50 <= TARGETS['added_p50_ms'])}), "
            f"added p99 {added99:+.2f} ms ({verdict(added99 <= TARGETS['added_p99_ms'])})")
    if litellm and litellm in results.ttft:
        line += f"; p50 {ratio(lt_t.p50_ms, results.ttft[litellm].p50_ms)} LiteLLM's"
    return line


def summarize_floor(results: Results) -> None:
    """How much of Liutong's gap to direct the framework floor already has, and how much is Liutong's own."""
    if FLOOR not in results.plain:
        return
    subject = "Liutong against the floor" if LIUTONG in results.plain else "The floor"
    print(f"\n{subject} (bench/passthrough.py: Starlette + one pooled aiohttp session, no auth, "
          "limits or usage: the lower bound of a Python ASGI proxy on this machine)")
    for title, table in results.by_mode():
        if FLOOR not in table:
            continue
        fl = table[FLOOR]
        if DIRECT in table:
            print(f"  {title}: the floor itself: throughput {ratio(fl.rps, table[DIRECT].rps)} direct, added p50 "
                  f"{fl.p50_ms - table[DIRECT].p50_ms:+.2f} ms, p99 {fl.p99_ms - table[DIRECT].p99_ms:+.2f} ms")
        if LIUTONG in table:
            print(f"  {title}: {_against_floor(table[LIUTONG], fl)}")
            if fl.cpu_ms and table[LIUTONG].cpu_ms:
                print(f"  {title}: {_cpu_against_floor(table[LIUTONG], fl)}")
            if table[LIUTONG].storage_cpu_ms is not None:
                print(f"  {title}: {_storage_cpu(table[LIUTONG])}")
            if DIRECT in table:
                print(f"  {title}: {_gap_share(table[LIUTONG], fl, table[DIRECT])}")
    if LIUTONG in results.ttft and FLOOR in results.ttft:
        lt_t, fl_t = results.ttft[LIUTONG], results.ttft[FLOOR]
        print(f"  time to first token: added p50 {lt_t.p50_ms - fl_t.p50_ms:+.2f} ms, "
              f"p99 {lt_t.p99_ms - fl_t.p99_ms:+.2f} ms over the floor")


def _against_floor(lt: WrkResult, fl: WrkResult) -> str:
    return (f"Liutong throughput {ratio(lt.rps, fl.rps)} the floor's; added p50 {lt.p50_ms - fl.p50_ms:+.2f} ms, "
            f"p99 {lt.p99_ms - fl.p99_ms:+.2f} ms over the floor")


def _cpu_against_floor(lt: WrkResult, fl: WrkResult) -> str:
    assert lt.cpu_ms and fl.cpu_ms
    own = lt.cpu_ms - fl.cpu_ms
    return (f"CPU ms/request: floor {fl.cpu_ms:.3f}, Liutong {lt.cpu_ms:.3f} ({ratio(lt.cpu_ms, fl.cpu_ms)}): "
            f"Liutong's own code {own:+.3f} ms/request, {100 * own / lt.cpu_ms:.0f}% of its CPU")


def _storage_cpu(lt: WrkResult) -> str:
    # Azurite writes the usage records on these same cores; Azure's Table Storage runs elsewhere.
    return (f"Azurite (the usage table, local only) spent {lt.storage_cpu_ms:.3f} ms CPU per request on the "
            "same cores, which the floor does not pay")


def _gap_share(lt: WrkResult, fl: WrkResult, d: WrkResult) -> str:
    gap, floor_gap = d.rps - lt.rps, d.rps - fl.rps
    if gap <= 0:
        return f"no throughput gap to direct ({gap:+.0f} req/s) to split"
    return (f"of Liutong's throughput gap to direct ({gap:.0f} req/s) the floor has {floor_gap:.0f} req/s "
            f"({100 * floor_gap / gap:.0f}%), Liutong's own code the rest ({100 * (gap - floor_gap) / gap:.0f}%)")
