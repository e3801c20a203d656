"""Outlier ejection, in the manner of Envoy's ``outlier_detection``.

An agent whose tasks fail ``consecutive_failures`` times in a row is taken
out of selection for ``base_ejection_s`` times the number of times it has
been ejected (capped at ``max_ejection_s``); at most ``max_ejection_percent``
of the pool is ejected at once, but one agent always may be.  Ejection
happens at the release that completes the streak; :meth:`OutlierEjector.end_expired`
brings agents back when their time is up.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from .._validate import check_int, check_positive, check_range
from .monitor import ResourceMonitor

__all__ = ["EjectionConfig", "OutlierEjector"]

log = logging.getLogger("arbiter_core.resources")


@dataclass(frozen=True, slots=True)
class EjectionConfig:
    """Outlier ejection in Envoy's manner.

    ``consecutive_failures`` failed releases in a row eject the agent for
    ``base_ejection_s * times_ejected`` (capped at ``max_ejection_s``); at most
    ``max_ejection_percent`` of the pool is ejected at once, but always at
    least one agent may be.  ``enabled=False`` turns it off.
    """

    enabled: bool = True
    consecutive_failures: int = 5
    base_ejection_s: float = 30.0
    max_ejection_s: float = 300.0
    max_ejection_percent: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise TypeError(f"enabled must be a bool, got {type(self.enabled).__name__}")
        check_int(self.consecutive_failures, "consecutive_failures", 1)
        check_positive(self.base_ejection_s, "base_ejection_s")
        if check_positive(self.max_ejection_s, "max_ejection_s") < self.base_ejection_s:
            raise ValueError(f"max_ejection_s ({self.max_ejection_s}) must be >= "
                             f"base_ejection_s ({self.base_ejection_s})")
        check_range(self.max_ejection_percent, "max_ejection_percent")


class OutlierEjector:
    """Decide and apply ejections on a :class:`ResourceMonitor`'s agents.

    Parameters
    ----------
    monitor : ResourceMonitor
        The pool; ejections go through its public methods.
    config : EjectionConfig, optional
        Replaceable at any time through :attr:`config`.
    """

    def __init__(self, monitor: ResourceMonitor, config: EjectionConfig | None = None) -> None:
        self._monitor = monitor
        self.config = EjectionConfig() if config is None else config

    @property
    def config(self) -> EjectionConfig:
        return self._config

    @config.setter
    def config(self, config: EjectionConfig) -> None:
        if not isinstance(config, EjectionConfig):
            raise TypeError(f"ejection must be an EjectionConfig, got {type(config).__name__}")
        self._config = config

    def on_outcome(self, agent_id: str, success: bool, streak: int) -> bool:
        """A task on ``agent_id`` finished; ``streak`` is its run of failures.

        Returns True when this outcome ejected the agent.
        """
        ej = self._config
        if success or not ej.enabled or streak < ej.consecutive_failures:
            return False
        mon = self._monitor
        pool = mon.get_pool_stats()
        allowed = max(1, math.floor(pool.total_agents * ej.max_ejection_percent / 100.0))
        if pool.ejected_agents >= allowed:
            log.info("agent %r failed %d times in a row but %d of %d agents are already "
                        "ejected (cap)", agent_id, streak, pool.ejected_agents,
                        pool.total_agents)
            return False
        times = mon.get_agent_resources(agent_id).ejection_count + 1
        duration = min(ej.base_ejection_s * times, ej.max_ejection_s)
        mon.eject(agent_id, mon.clock.now() + duration)
        log.info("agent %r ejected for %.0f s after %d consecutive failures",
                    agent_id, duration, streak)
        return True

    def end_expired(self) -> list[str]:
        """Bring back the agents whose ejection is over; returns them."""
        return self._monitor.end_ejections()

    def __repr__(self) -> str:
        return f"OutlierEjector({self._config!r})"
