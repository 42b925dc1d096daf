"""Ports handed to services are chosen below the kernel's ephemeral range, so no outgoing
connection can take one between the choice and the service binding it."""

from __future__ import annotations

import socket
from pathlib import Path

from devicestream.processes import free_port_range, free_ports


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    ports = free_ports(6)
    assert len(set(ports)) == 6
    assert all(0 < p < _ephemeral_low() for p in ports)
    for p in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_a_port_in_use_is_never_handed_out() -> None:
    first = free_port_range(3)
    with socket.socket() as held:
        held.bind(("127.0.0.1", first + 1))
        held.listen()
        for _ in range(50):
            assert first + 1 not in free_ports(3)
