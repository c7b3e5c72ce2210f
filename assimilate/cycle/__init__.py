"""``assimilate cycle``: one idempotent assimilation cycle, for schedulers (cron, systemd, Cylc).

    assimilate cycle WORKFLOW.yaml [--until POINT] [--redo POINT] [--quiet]
    cycle("workflow.yaml", until=None, redo=None, progress=True) -> CycleOutcome

**Cycle points.** A cycle point is the integer model step at which the cycle's window
starts; model step s is model time s·Δt (Δt: the config's ``simulator.interval``), the
time axis of ``assimilate run`` and of the observation files. The cycle at point P
assimilates the observations at steps P+1..P+L (L: ``cycle_length``), from the analysis
ensemble at step P (the previous cycle's last analysis; for the first cycle the
``background`` file, else members drawn from the climatology, as ``run`` does) to the
analysis at step P+L, where the next cycle starts; then it forecasts ``lead`` steps on.
Points are ``start, start+L, start+2L, ...`` (Cylc: integer cycling, ``R/start/PL``).
Each cycle restarts the method and the model from the last analysis states alone (a
forecaster conditioned on several past states sees the last one repeated), with a seed
drawn from ``(seed, P)``: a cycle's result depends only on its inputs.

**The workflow file** (:mod:`.workflow`): ``config``, ``method`` (``controller``),
``settings``, ``forecaster``, ``controller``, ``climatology``, ``background``, ``members``
(8), ``seed`` (0), ``cycle_length``, ``lead`` (L), ``start`` (0), ``calendar`` (none),
``inbox``, ``analysis``. Every input is checked as for ``assimilate run``
(:mod:`assimilate.da.inputs`) before the first cycle of a call.

**Readiness** (:mod:`.inbox`). Observation files (a user's format, ``time`` in model time,
one trajectory; NetCDF or Zarr; names starting with ``.`` ignored) arrive in ``inbox``. A
window is *ready* when some file holds an observation at step ≥ P+L (the stream has passed
the window's end); its observations are every file's at steps P+1..P+L. A call runs the
next cycle if it is ready, and only that one. ``until=Q`` runs every cycle with point ≤ Q,
ready or not (a backfill). A window without observations gives a *forecast-only* cycle
(the method's own run through it), flagged in the store. ``redo=P`` discards cycle P and
every later one and runs them again with the inbox as it is now (late observations), on
to ``until`` if given. Observations that reach a done window are reported (a note and a
``late`` log event), never taken in silently. Observations at or before step ``start``
belong to no window.

**The analysis store** has dims as ``assimilate run``'s, with one trajectory:
``u`` and ``u_background`` ``(trajectory, member, time, x)`` (``y, x`` in 2-D; ``u`` the
config's field variable) at every window's steps, ``n_observations (time)`` (0 where
nothing was observed), ``forecast_only (cycle)``, and ``u_forecast (trajectory, cycle,
member, lead, x)``, each cycle's forecast from its last analysis (valid at step
P+L+lead). Coordinates: ``time`` (model time), ``cycle`` (the point), ``lead`` (steps).
Its attributes hold the workflow's ``cycle_start``, ``cycle_length``, ``lead``,
``n_members``, ``interval`` and the config; a workflow that disagrees is refused, and so
is a config whose physics differ from the stored one (an edited ``length``).

**Records and log** (:mod:`.journal`): ``NAME.cycles/P.json`` for each done cycle (its
window, input files with their sha256, the config and its sha256, method and every
hyper-parameter, checkpoints with
their sha256, members, seed, NFE, timings, package versions, host) and ``NAME.log.jsonl``,
one JSON line per event: ``start``, ``done``, ``skip`` (nothing to do: all done),
``wait`` (not ready), ``busy``, ``late``, ``redo``, ``recover``, ``fail``, each with its
``point`` and, when done, ``seconds``.

**Crash safety** (:mod:`.journal`). A cycle is computed first, changing nothing; then a
journal is written, the store grows, the record is written, and removing the journal
commits. A call that finds a journal (its writer was killed, kill -9 included) first
shrinks the store back to the journal's lengths and deletes the records from its point
on: the store is exactly as before that cycle, which is then run afresh. The lock
(:func:`pde.io.output.claim`, a kernel ``flock`` held for the whole call) makes a second call
exit at once; a killed holder leaves a lock file that blocks nothing. A process crash is
covered; a machine losing power may lose writes that were not yet on disk.

**Exit codes** of ``assimilate cycle``: 0 a cycle ran, or every cycle up to ``--until``
was already done (a no-op that says so); 75 (EX_TEMPFAIL) retry later: nothing to do
yet, or another call is cycling this store; 1 a cycle failed (the method diverged, or
its output could not be written), rolled back; 2 bad input (the workflow, its config, an observation file,
``--until``/``--redo``), nothing changed; 130 interrupted (rolled back); 70 a bug.

Test hook: ``ASSIMILATE_CYCLE_CRASH_AT=journal|append|record`` kills the process with
SIGKILL after the journal is written, midway through growing the store, or after the
record is written.

May import ``pde``, ``assimilate.config``, ``observe`` and ``da`` (inputs, methods, run);
nothing imports it but the command line.
"""

from __future__ import annotations

from assimilate.cycle.cycling import (
    EXIT_BAD_INPUT,
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_RETRY,
    CycleBusy,
    CycleFailed,
    CycleOutcome,
    cycle,
)
from assimilate.cycle.workflow import Workflow, load_workflow

__all__ = ["EXIT_BAD_INPUT", "EXIT_DONE", "EXIT_FAILED", "EXIT_RETRY", "CycleBusy",
           "CycleFailed", "CycleOutcome", "Workflow", "cycle", "load_workflow"]
