"""The one way a job is handed to the workers (every app's ``tasks.py`` calls :func:`enqueue`).

The policy, said once:

- **On commit.** The message is sent after the transaction that made the job's row commits (at
  once when there is none), so a worker never looks for a row that is not there yet, and a
  rolled-back row is never sent.
- **Once, quickly.** One connection attempt with a short timeout and no publish retries: with
  the broker down, a person's page, a command or a worker's task is not held for the seconds of
  kombu's default retry loop (which also sleeps between tries).
- **The row says so.** When the broker cannot take the message, ``on_failure`` gets
  ``"queue unreachable: <error>"`` and records it on the job's row (the jobs' ``give_up()``), so
  nothing is left looking queued for a message that was never sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from django.db import transaction

logger = logging.getLogger(__name__)

# Seconds to reach the broker (TCP connect and each socket read/write of the publish). A local or
# same-network Redis answers in milliseconds; a few seconds tolerates a busy one.
CONNECT_TIMEOUT = 3.0

UNREACHABLE = "queue unreachable"


def enqueue(task, args: Sequence, *, queue: str, on_failure: Callable[[str], None]) -> None:
    """Send ``task(*args)`` to ``queue`` once the transaction commits; on failure call ``on_failure(reason)``."""
    transaction.on_commit(lambda: send(task, args, queue=queue, on_failure=on_failure))


def send(
    task, args: Sequence, *, queue: str, on_failure: Callable[[str], None], countdown: float | None = None
) -> bool:
    """Send now (no transaction to wait for), to run ``countdown`` seconds from now if given.
    True if the broker took the message."""
    try:
        # A connection of its own, not the pool's: the pool's would retry connecting for
        # broker_connection_timeout and carry no socket timeouts.
        with task.app.connection_for_write(
            connect_timeout=CONNECT_TIMEOUT,
            transport_options={
                "max_retries": 0,  # kombu: one connection attempt
                "socket_connect_timeout": CONNECT_TIMEOUT,  # redis: connect, and every read/write
                "socket_timeout": CONNECT_TIMEOUT,
                "retry_on_timeout": False,
            },
        ) as connection:
            options = {"countdown": countdown} if countdown else {}
            task.apply_async(tuple(args), queue=queue, retry=False, connection=connection, **options)
    except Exception as exc:  # kombu raises transport-specific errors
        reason = f"{UNREACHABLE}: {type(exc).__name__}: {exc}"[:1000]
        logger.warning("%s%s not sent to queue %s: %s", task.name, tuple(args), queue, reason)
        on_failure(reason)
        return False
    return True
