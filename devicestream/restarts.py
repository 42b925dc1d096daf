"""When the launcher restarts a component (devicestream/supervise.py): the backoff of one that died,
whether its unreadiness is its own, and what it does with one that refuses.

A component that refuses to run until an operator acts exits with EXIT_REFUSED (contract/launcher.py):
the Spark job with a checkpoint of a recreated topic. Restarting it would only refuse again (a crash
loop), so the launcher records it as failed with its one-line reason, and starts it again once its
spec's retry_when says the cause is gone (the checkpoint moved aside by `devicestream reset-checkpoint`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contract.launcher import EXIT_REFUSED

if TYPE_CHECKING:
    from devicestream.specs import ComponentSpec
    from devicestream.supervise import Running

#: the first restart's delay; each next one doubles, up to restart_backoff_max_s
FIRST_RESTART_DELAY_S = 0.5
#: a component ready this long before it died starts over at the first delay
HEALTHY_RESET_S = 60.0


def restart_delay(planned_s: float | None, healthy_s: float) -> float:
    """How long to wait before restarting a component that died: the delay its backoff had reached
    (`planned_s`; None: never restarted), or the first delay again after it was ready for a while."""
    if planned_s is None or healthy_s > HEALTHY_RESET_S:
        return FIRST_RESTART_DELAY_S
    return planned_s


def dependencies_ready(spec: ComponentSpec, components: list[Running]) -> bool:
    """Whether every component `spec` depends on runs here and is ready (a quorum: every node)."""
    for dep in spec.depends_on:
        matches = [c for c in components if dep in (c.spec.name, c.spec.quorum)]
        if not matches or any(c.state != "ready" for c in matches):
            return False
    return True


def refused(returncode: int | None) -> bool:
    return returncode == EXIT_REFUSED


def mark_refused(r: Running) -> str:
    """Record `r` (which exited with EXIT_REFUSED) as failed with its reason; the line to print."""
    assert r.proc is not None
    r.last_exit, r.supervised = r.proc.returncode, True
    reason = (r.spec.refusal() if r.spec.refusal else None) or f"refused to run; see {r.spec.log_file}"
    r.state, r.cause = "failed", f"refused: {reason}"
    return f"  {r.spec.name} {r.cause} (not restarted until that is done)"


def retry_due(components: list[Running]) -> list[Running]:
    """The refused components whose cause is gone (the operator did what the reason said)."""
    return [r for r in components if r.state == "failed" and r.spec.retry_when is not None and r.spec.retry_when()]
