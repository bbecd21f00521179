"""The actor kernel: Durable-Object semantics on trio (DESIGN.md "Actors").

Public names: `ActorSystem` runs actors; `Address` names one; `Actor` is what a kind's factory
returns; `Kind` describes a kind of actor; `Clock` gives wall time that tests can drive.
"""

from oauthd.runtime.clock import Clock, SystemClock, TrioClock
from oauthd.runtime.kernel import Actor, ActorSystem, Address, Kind, SystemStats

__all__ = [
    "Actor",
    "ActorSystem",
    "Address",
    "Clock",
    "Kind",
    "SystemClock",
    "SystemStats",
    "TrioClock",
]
