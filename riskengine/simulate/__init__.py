"""Realistic synthetic login traffic with labelled attacks, 2FA channels and a signup experiment.

>>> from riskengine.simulate import SimulationConfig
>>> SimulationConfig(users=100, days=7).days
7
"""

from riskengine.simulate.run import SimulationConfig, existing_run, simulate

__all__ = ["SimulationConfig", "existing_run", "simulate"]
