"""The usage benchmark's printed report: one row per size, what each read, the ratios to the first size (the
baseline), and the verdict against the issue's targets (flat: <= 1.2x at the largest size; absolute: report
< 2 s, metering run < 5 s there)."""

from __future__ import annotations

import os

from bench.usage_measure import Phase, SizeResult, accepted, median_wall

FLAT = 1.2
REPORT_MAX_S = 2.0
METERING_MAX_S = 5.0


def print_results(results: list[SizeResult], *, elapsed: float) -> None:
    print(f"\nusage aggregates: {os.cpu_count()} CPUs shared by this process (writer, readers, Metering stand-in "
          f"thread) and Azurite; reports: median of {len(results[0].report_json)}; whole run {elapsed:.0f} s")
    print_main_table(results)
    for result in results:
        print_details(result)
    baseline = results[0]
    for result in results[1:]:
        print_growth(baseline, result)
    if len(results) > 1:
        print_verdict(baseline, results[-1])


def print_main_table(results: list[SizeResult]) -> None:
    print(f"\n  {'records':>9} {'records/s':>9} {'writer CPU':>10} {'Azurite CPU':>11} {'report JSON':>11} "
          f"{'report CSV':>10} {'metering':>8} {'verify 1 h':>10}")
    print(f"  {'':>9} {'':>9} {'ms/1k rec':>10} {'ms/1k rec':>11} {'s':>11} {'s':>10} {'s':>8} {'s':>10}")
    for r in results:
        print(f"  {r.records:9,d} {r.write.per_second:9,.0f} {r.write.writer_ms_per_1k:10.0f} "
              f"{r.write.storage_ms_per_1k:11.0f} {median_wall(r.report_json):11.3f} {median_wall(r.report_csv):10.3f} "
              f"{r.metering_hourly[0].wall:8.3f} {r.verify.wall:10.3f}")


def _cpu(phase: Phase) -> str:
    return f"{phase.wall:.3f} s (CPU: this process {phase.cpu:.2f} s, Azurite {phase.storage:.2f} s)"


def print_details(r: SizeResult) -> None:
    w, c = r.write, r.counts
    per_hour_groups = c.aggregates / c.hours if c.hours else 0
    shards = c.shard_hours / c.hours if c.hours else 0
    print(f"\n{r.records:,} records, {r.groups:,} groups")
    print(f"  write: {_cpu(w.phase)}; {w.transactions:,} transactions ({w.records / max(w.transactions, 1):.1f} "
          f"records each), spilled {w.spilled}, replayed {w.replayed}; making the records took {w.generate_cpu:.1f} s "
          "CPU (not counted as the writer's)")
    print(f"  report read {c.aggregates:,} aggregate rows = {c.hours} hours x {shards:g} shard(s) x "
          f"{per_hour_groups:,.0f} groups per hour ({c.groups:,} distinct) + {c.shard_hours} shard-hour headers; "
          f"behind: {c.behind}; request total {c.requests:,} "
          f"({'= records written' if c.requests == r.records else 'MISMATCH: records written ' + str(r.records)})")
    print(f"  report JSON {_cpu(sorted(r.report_json, key=lambda p: p.wall)[len(r.report_json) // 2])}")
    print(f"  report CSV  {_cpu(sorted(r.report_csv, key=lambda p: p.wall)[len(r.report_csv) // 2])}")
    runs = (("metering first run (23 h)", r.metering_first), ("metering hourly run", r.metering_hourly))
    for name, (phase, run) in runs:
        print(f"  {name}: {_cpu(phase)}; {len(run.events)} events, {accepted(run)} accepted, exit {run.exit_code}")
    print(f"  verify one hour {_cpu(r.verify)}")
    for note in r.notes:
        print(f"  {note}")


def _times(a: float, b: float) -> str:
    return f"x{b / a:.2f}" if a else "n/a"


def print_growth(base: SizeResult, r: SizeResult) -> None:
    """How cost grows with the data: the size against the baseline."""
    print(f"\n{r.records:,} against {base.records:,} records (x{r.records / base.records:g} the data):")
    print(f"  report JSON {_times(median_wall(base.report_json), median_wall(r.report_json))}, "
          f"CSV {_times(median_wall(base.report_csv), median_wall(r.report_csv))}, "
          f"metering hourly {_times(base.metering_hourly[0].wall, r.metering_hourly[0].wall)}, "
          f"metering first {_times(base.metering_first[0].wall, r.metering_first[0].wall)}, "
          f"verify {_times(base.verify.wall, r.verify.wall)}")
    print(f"  aggregate rows read {_times(base.counts.aggregates, r.counts.aggregates)}; "
          f"write time {_times(base.write.phase.wall, r.write.phase.wall)}, "
          f"records/s {_times(base.write.per_second, r.write.per_second)}, "
          f"writer CPU per record {_times(base.write.writer_ms_per_1k, r.write.writer_ms_per_1k)}, "
          f"Azurite CPU per record {_times(base.write.storage_ms_per_1k, r.write.storage_ms_per_1k)}")


def print_verdict(base: SizeResult, r: SizeResult) -> None:
    checks = [
        ("report JSON", median_wall(base.report_json), median_wall(r.report_json), REPORT_MAX_S),
        ("report CSV", median_wall(base.report_csv), median_wall(r.report_csv), REPORT_MAX_S),
        ("metering run", base.metering_hourly[0].wall, r.metering_hourly[0].wall, METERING_MAX_S),
    ]
    print(f"\ntargets at {r.records:,} records (baseline {base.records:,}):")
    for name, before, after, limit in checks:
        flat, fast = after <= FLAT * before, after < limit
        print(f"  {name:13} {after / before:5.2f}x the baseline (<= {FLAT}x): {'PASS' if flat else 'FAIL'}   "
              f"{after:.3f} s (< {limit:g} s): {'PASS' if fast else 'FAIL'}")
