"""Realistic synthetic login traffic with labelled attacks, 2FA channels and a signup experiment.

>>> from riskengine.offline.simulate import SimulationConfig
>>> SimulationConfig(users=100, days=7).days
7
"""

from riskengine._extras import extra

with extra("sim", feature="the simulator (riskengine.offline.simulate)"):
    import numpy  # noqa: F401 - checked here so every simulator module names the extra
    import polars  # noqa: F401
    import tqdm  # noqa: F401

from riskengine.offline.simulate.run import SimulationConfig, existing_run, simulate

__all__ = ["SimulationConfig", "existing_run", "simulate"]
