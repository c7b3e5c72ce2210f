"""Data-assimilation methods, one per file, each a frozen value of its hyper-parameters.

- ``free`` (:mod:`.free`): the model's ensemble, no observations (the floor);
- ``dps`` (:mod:`.dps`): likelihood guidance inside the forecaster's sampler;
- ``enkf``, ``etkf``, ``letkf`` (:mod:`.enkf`, :mod:`.etkf`, :mod:`.letkf`): ensemble
  Kalman filters, pure jit-able JAX analyses, with the true simulator or the forecaster;
- ``nudging`` (:mod:`.nudging`): Newtonian relaxation toward the observations;
- ``oi`` (:mod:`.oi`): optimal interpolation with a climatological covariance;
- ``climatology`` (:mod:`.climatology`): climatological draws, the sanity bound;
- ``controller`` (:mod:`.controller`): the trained amortised controller steers the
  forecaster in every sub-step (``refine=K``: K test-time gradient steps on top);
- ``optimised-control`` (:mod:`.optimised_control`): the same affine corrections optimised
  at test time for each observed step, no network.

Build one from a name and ``key=value`` strings with :func:`build_method`; run it with
:func:`assimilate.da.contract.assimilate`. A method named ``x-y`` lives in ``x_y.py``; the other
modules (``ensemble``, ``filtering``, ``linear``, ``registry``) hold what methods share.
Each method class declares what the rest of the application needs to know of it (its
needs, tuning grid, cost class; :class:`assimilate.da.contract.Method`), so adding a method
is adding its file.

May import ``pde``, the DA contract (``assimilate.da``), ``diffusion`` and, lazily, ``models``
and ``control`` (methods on the forecaster).
"""

from __future__ import annotations

from assimilate.da.methods.registry import (
    all_methods,
    build_method,
    method_class,
    method_keys,
    methods_help,
    parse_settings,
    with_controller,
)

__all__ = ["all_methods", "build_method", "method_class", "method_keys", "methods_help",
           "parse_settings", "with_controller"]
