"""Group commit: many small commands (one pacs.002 per HTTP request, one send result per
message) share one database transaction. A caller submits a command and waits until the
transaction that carried it has committed, so an HTTP 200 to a partner always means durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from switch.domain.errors import InvariantViolation
from switch.service.handlers import Deps, Outcome
from switch.service.ports import UnitOfWork

log = logging.getLogger(__name__)
C = TypeVar("C")
# A batch handler: all the commands of one group, one outcome per command, in order.
Handler = Callable[[Sequence[C], UnitOfWork, Deps], Awaitable[list[Outcome]]]
# The bus's transaction runner: work in one unit of work, run again after a lost race, the
# committed outbox rows handed on (MessageBus.in_transaction)
InTransaction = Callable[..., Awaitable[Any]]


class GroupCommitter(Generic[C]):
    def __init__(
        self, name: str, in_transaction: InTransaction, deps: Deps, handler: Handler[C], *, batch_max: int, queue_max: int
    ) -> None:
        self.name = name
        self._in_transaction = in_transaction
        self._deps = deps
        self._handler = handler
        self._batch_max = batch_max
        self._queue: asyncio.Queue[tuple[C, asyncio.Future[Outcome]]] = asyncio.Queue(maxsize=queue_max)

    async def submit(self, cmd: C) -> Outcome:
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((cmd, fut))
        return await fut

    def pending(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        """Runs until cancelled (the composition root owns it)."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[C, asyncio.Future[Outcome]]]) -> None:
        cmds = [cmd for cmd, _ in batch]
        try:
            outcomes = await self._in_transaction(
                lambda uow: self._handler(cmds, uow, self._deps), name=self.name
            )
        except Exception as exc:  # noqa: BLE001 - every waiter must hear about the failure
            log.exception("%s: group of %d failed", self.name, len(batch))
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if isinstance(exc, InvariantViolation):
                raise  # a bug: let the process stop; redelivery and `admit` absorb the rest
            return
        for (_, fut), outcome in zip(batch, outcomes, strict=True):
            if not fut.done():
                fut.set_result(outcome)
