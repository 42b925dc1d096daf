"""The launcher's pure rules (no processes)."""

from __future__ import annotations

from pathlib import Path

from devicestream.restarts import FIRST_RESTART_DELAY_S, HEALTHY_RESET_S, dependencies_ready, restart_delay
from devicestream.specs import ComponentSpec
from devicestream.supervise import Running


async def _never() -> bool:
    return False


def _running(name: str, state: str, quorum: str = "", depends_on: tuple[str, ...] = ()) -> Running:
    spec = ComponentSpec(name, ["true"], Path("x.log"), _never, quorum=quorum, depends_on=depends_on)
    return Running(spec, state=state)


def test_unready_time_counts_only_while_what_it_depends_on_is_ready() -> None:
    gen = _running("generator", "unready", depends_on=("kafka",))
    assert dependencies_ready(gen.spec, [_running("kafka", "ready"), gen])
    assert not dependencies_ready(gen.spec, [_running("kafka", "restarting"), gen])
    assert not dependencies_ready(gen.spec, [gen])  # Kafka not run by this launcher: never restarted for it
    quorum = [_running(f"kafka-{i}", "ready", quorum="kafka") for i in (1, 2, 3)]
    assert dependencies_ready(gen.spec, [*quorum, gen])
    quorum[1].state = "unready"
    assert not dependencies_ready(gen.spec, [*quorum, gen])
    merger = _running("merger", "unready")
    assert dependencies_ready(merger.spec, [merger])  # depends on nothing: its unreadiness is its own


def test_the_restart_delay_grows_and_starts_over_after_a_healthy_while() -> None:
    assert restart_delay(None, 0.0) == FIRST_RESTART_DELAY_S  # the first restart
    assert restart_delay(8.0, 5.0) == 8.0  # crash-looping: the backoff reached so far
    assert restart_delay(8.0, HEALTHY_RESET_S + 1) == FIRST_RESTART_DELAY_S  # it had been healthy


def test_a_refused_component_is_failed_with_its_line_until_its_cause_is_gone(tmp_path: Path) -> None:
    import subprocess

    from contract.launcher import EXIT_REFUSED
    from devicestream.restarts import mark_refused, refused, retry_due

    gone = {"checkpoint": False}
    spec = ComponentSpec(
        "spark",
        ["true"],
        tmp_path / "spark.log",
        _never,
        refusal=lambda: "topic 't' was recreated: run `devicestream reset-checkpoint`",
        retry_when=lambda: gone["checkpoint"],
    )
    r = Running(spec, state="starting")
    r.proc = subprocess.Popen(["sh", "-c", f"exit {EXIT_REFUSED}"])
    r.proc.wait()
    assert refused(r.proc.returncode) and not refused(1) and not refused(-9)
    line = mark_refused(r)
    assert r.state == "failed" and r.last_exit == EXIT_REFUSED and r.supervised
    assert r.cause == "refused: topic 't' was recreated: run `devicestream reset-checkpoint`"
    assert r.cause in line and "not restarted" in line
    other = _running("merger", "failed")  # failed without a retry rule: left alone
    assert retry_due([r, other]) == []
    gone["checkpoint"] = True
    assert retry_due([r, other]) == [r]
