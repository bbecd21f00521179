"""The actor kernel: Durable-Object semantics on trio (docs/architecture.md "Actors").

Public names: `ActorSystem` runs actors; `Address` names one; `Actor` is what a kind's factory
returns (`NOT_NOW`: what its optional `receive_now` answers for a message that must wait);
`Kind` describes a kind of actor; `Query[R]` and `Command[R]` are the messages
that reply R; `Clock` gives wall time that tests can drive;
`Limiter` is a per-process rate limit on that clock, and `reserve` holds an `Attempt` under
several limits while it is judged.
"""

from oauthd.runtime.clock import Clock, SystemClock, TrioClock
from oauthd.runtime.kernel import NOT_NOW, Actor, ActorSystem, Address, Kind, SystemStats
from oauthd.runtime.messages import Command, Message, Query
from oauthd.runtime.ratelimit import Attempt, Limiter, reserve

__all__ = [
    "NOT_NOW",
    "Actor",
    "ActorSystem",
    "Address",
    "Attempt",
    "Clock",
    "Command",
    "Kind",
    "Limiter",
    "Message",
    "Query",
    "SystemClock",
    "SystemStats",
    "TrioClock",
    "reserve",
]
