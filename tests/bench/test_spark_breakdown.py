"""Where the Spark job's CPU goes by kind of thread (bench/spark_breakdown.py): the pure parts, and one
snapshot of this process's own threads."""

from __future__ import annotations

import os

from bench.spark_breakdown import thread_cpu_seconds, thread_cpu_shares, thread_kind


def test_thread_kind_drops_the_thread_number() -> None:
    assert thread_kind("C2 CompilerThread1") == "C2 CompilerThread"
    assert thread_kind("GC Thread#3") == "GC Thread"
    assert thread_kind("G1 Conc#0") == "G1 Conc"
    assert thread_kind("Executor task l") == "Executor task l"
    assert thread_kind("python") == "python"
    assert thread_kind("123") == "123"  # a name that is only a number stays


def test_thread_cpu_shares_ranks_what_each_kind_used_between_snapshots() -> None:
    before = {"java: C2 CompilerThre": 10.0, "java: GC Thread": 1.0, "python: python": 2.0}
    after = {"java: C2 CompilerThre": 13.0, "java: GC Thread": 1.0, "python: python": 3.0, "java: new": 1.0}
    assert thread_cpu_shares(before, after) == (
        "5.0 CPU s: java: C2 CompilerThre 3.0 s (60%), python: python 1.0 s (20%), java: new 1.0 s (20%)"
    )
    assert thread_cpu_shares(after, after) == "no CPU time measured"


def test_thread_cpu_seconds_sees_this_process() -> None:
    snap = thread_cpu_seconds(os.getpid())
    assert snap and all(k.split(": ", 1)[0] for k in snap) and all(v >= 0 for v in snap.values())
    assert thread_cpu_seconds(2**22 + 12345) == {}  # no such process
