"""Ports for servers that are stopped and started again (switch/broker.py)."""

from __future__ import annotations


def test_a_restartable_port_lies_below_the_ephemeral_range_and_is_free() -> None:
    """A server stopped and started again on its port (a simulator playing an outage) gets one no
    outgoing connection can take meanwhile (switch/broker.py)."""
    import socket

    from switch.broker import _ephemeral_low, restartable_port

    port = restartable_port()
    assert 20000 <= port < _ephemeral_low()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free
