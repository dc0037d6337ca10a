"""The shutdown grace and the broker's start-up timeout (issue 11 item 4): configured in
switch.toml, overridden by the environment, and bounded (a grace too short to close anything in,
or longer than any orchestrator waits, is refused at load)."""

from __future__ import annotations

import pytest

from switch import config, limits


def test_the_shipped_grace_is_the_default_of_20_s_and_the_broker_gets_10_s() -> None:
    cfg = config.load(env={})
    assert (cfg.switch.shutdown_grace_s, cfg.kafka.connect_timeout_s) == (20.0, 10.0)
    assert limits.shutdown_grace_s_default == 20.0


def test_the_environment_overrides_both() -> None:
    cfg = config.load(env={"MEKONG_SHUTDOWN_GRACE_S": "7.5", "MEKONG_KAFKA_CONNECT_TIMEOUT_S": "2"})
    assert (cfg.switch.shutdown_grace_s, cfg.kafka.connect_timeout_s) == (7.5, 2.0)


@pytest.mark.parametrize("grace", ["0", "3", "601", "soon"])
def test_a_grace_outside_its_bounds_is_refused_at_load(grace: str) -> None:
    with pytest.raises(ValueError, match="shutdown_grace_s"):  # pydantic's, or the config check's ConfigErrors
        config.load(env={"MEKONG_SHUTDOWN_GRACE_S": grace})
