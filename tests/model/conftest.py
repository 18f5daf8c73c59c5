"""Small labelled login streams for the model tests, written in the native events layout.

Users log in from home (an address the built-in GeoLite2-City resolves), on their own
devices, around their own hour; attackers log in from abroad or from elsewhere at home, on
a new browser, at odd hours, sometimes after failed passwords. Deterministic per seed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from riskengine.offline.model.sample import write_sample


def write_logins(out: Path) -> tuple[Path, Path]:
    return write_sample(out)


@pytest.fixture(scope="session")
def logins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_logins(tmp_path_factory.mktemp("logins"))


@pytest.fixture(scope="session")
def dataset(logins: tuple[Path, Path]) -> pl.DataFrame:
    from riskengine.offline.model.dataset import build_dataset

    events, labels = logins
    return build_dataset(events, labels=labels)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, dataset: pl.DataFrame) -> Callable[[str, str], Path]:
    """``trained(estimator, calibration)`` → model directory (cached per combination)."""
    from riskengine.core.model.features import FeatureConfig
    from riskengine.offline.model.train import train_model

    cache: dict[tuple[str, str], Path] = {}

    def get(estimator: str = "logistic", calibration: str = "sigmoid") -> Path:
        key = (estimator, calibration)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"model-{estimator}-{calibration}")
            train_model(dataset, out, feature_config=FeatureConfig(), estimator=estimator,
                        calibration=calibration)
            cache[key] = out
        return cache[key]

    return get
