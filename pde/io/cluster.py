"""Dask clusters for the commands that fan out: join one, or start a local one.

``dask_client(workers, scheduler)`` yields a ``distributed.Client`` (or ``None`` when
neither is asked for: work then runs in this process). Joining an address gives up after
``timeout`` seconds with one line naming the address, instead of distributed's default of
30 s and a traceback. A Ctrl-C while a local cluster starts surfaces as
``KeyboardInterrupt``, never as whatever assertion the interrupted start-up raised.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from pde.io.errors import ClusterError

__all__ = ["DEFAULT_SCHEDULER_TIMEOUT", "ClusterError", "dask_client"]

DEFAULT_SCHEDULER_TIMEOUT = float(os.environ.get("ASSIMILATE_SCHEDULER_TIMEOUT", "10"))


@contextlib.contextmanager
def _children_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with SIGINT ignored (they inherit it): a Ctrl-C, which the
    terminal sends to the whole process group, then reaches this process alone, which
    shuts the cluster down; each worker would otherwise print its own traceback. The
    price: a Ctrl-C in the second or two the cluster takes to start is not seen."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _abandon_clusters() -> None:
    """Close half-started local clusters now, quietly: left to distributed's exit hook, a
    cluster interrupted while starting fails an assertion there and prints a traceback."""
    import atexit

    from distributed.deploy.spec import SpecCluster, close_clusters

    atexit.unregister(close_clusters)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    for cluster in list(SpecCluster._instances):
        with contextlib.suppress(BaseException):
            cluster.close(timeout=5)


@contextlib.contextmanager
def dask_client(workers: int | None, scheduler: str | None, *,
                timeout: float = DEFAULT_SCHEDULER_TIMEOUT) -> Iterator[object | None]:
    """A client for the duration: ``scheduler`` to join, ``workers`` local processes, or none.

    Local workers are single-threaded processes (our tasks release the GIL rarely).
    """
    if scheduler is None and not workers:
        yield None
        return
    from distributed import Client, LocalCluster

    if not timeout > 0:
        raise ClusterError(f"the scheduler timeout must be a positive number of seconds, "
                           f"got {timeout}")
    cluster = None
    try:
        if scheduler is not None:
            client = Client(scheduler, timeout=timeout)
        else:
            # task errors reach the client; worker chatter (heartbeats lost at shutdown) not
            with _children_ignore_ctrl_c():
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None,
                                       silence_logs=logging.CRITICAL)
            client = Client(cluster)
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            cluster.close()
        if scheduler is None:
            raise ClusterError(f"a local Dask cluster of {workers} workers did not start: "
                               f"{error}") from None
        raise ClusterError(f"cannot reach the Dask scheduler at '{scheduler}' within "
                           f"{timeout:g} s (--scheduler-timeout); check the address and that "
                           "the scheduler is running") from None
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt) or isinstance(error.__context__,
                                                               KeyboardInterrupt):
            _abandon_clusters()
            raise KeyboardInterrupt from None  # an interrupted start-up, whatever it raised
        raise
    try:
        yield client
    except KeyboardInterrupt:
        # gathers cut short log "Task exception was never retrieved" when collected
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
