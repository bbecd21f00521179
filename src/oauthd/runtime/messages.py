"""What callers send actors: a message names the type of its reply, as trio's
`open_memory_channel[T]` carries `T` to both ends. `ActorSystem.ask(address, GetClient())`
then returns a `ClientRecord` for mypy to check, and the shard actors' `@command` / `@query`
markers check that a handler returns what its message promises.

A message is a frozen, slotted dataclass that subclasses `Query[R]` (it only reads) or
`Command[R]` (it may write), R being its reply::

    @dataclass(frozen=True, slots=True)
    class GetClient(Query[ClientRecord]):
        '''Query: the client's registration.'''
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Command", "Message", "Query"]

R = TypeVar("R", covariant=True)  # a reply is an output: Query[bool] is a Query[object]


class Message(Generic[R]):
    """A message whose reply is an R (None for none)."""

    __slots__ = ()


class Query(Message[R]):
    """A message that only reads the actor's state."""

    __slots__ = ()


class Command(Message[R]):
    """A message that may change the actor's state."""

    __slots__ = ()
