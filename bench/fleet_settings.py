"""Settings for bench/fleet.py's processes: the portal's own, plus a count of SQL queries.

With FLEET_COUNTER_URL set, every query a process runs through Django is counted and the count
is added to the Redis key ``fleet:queries`` about once a second (a process killed with SIGKILL
loses at most its last second). Nothing else differs from drportal.settings.
"""

import os
import threading
import time

from django.db.backends.signals import connection_created

from drportal.settings import *  # noqa: F403

_COUNTER_URL = os.environ.get("FLEET_COUNTER_URL", "")
_state = {"pid": None, "count": 0, "flushed": 0}
_lock = threading.Lock()


def _flush_forever() -> None:
    import redis

    client = redis.Redis.from_url(_COUNTER_URL)
    while True:
        time.sleep(1.0)
        with _lock:
            delta = _state["count"] - _state["flushed"]
            _state["flushed"] = _state["count"]
        if delta:
            try:
                client.incrby("fleet:queries", delta)
            except Exception:  # the bench reports what arrived; a lost second is noise
                pass


def _count(execute, sql, params, many, context):
    pid = os.getpid()
    with _lock:
        if _state["pid"] != pid:  # first query in this process (prefork children start fresh counts)
            _state.update(pid=pid, count=0, flushed=0)
            threading.Thread(target=_flush_forever, daemon=True, name="fleet-query-counter").start()
        _state["count"] += 1
    return execute(sql, params, many, context)


def _install(sender, connection, **kwargs):
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


if _COUNTER_URL:
    connection_created.connect(_install, dispatch_uid="fleet-bench-query-counter")
