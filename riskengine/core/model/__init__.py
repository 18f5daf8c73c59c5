"""Learned risk model, the online half: the features shared by the engine and training, and
fast pure-Python inference (training lives in :mod:`riskengine.offline.model`).

``riskengine model train`` fits a calibrated classifier on replayed, labelled logins;
``policy.model = "<dir>"`` makes the engine blend its probability into the risk.
"""

from riskengine.core.model.features import FEATURE_NAMES, FeatureConfig, FeatureExtractor, FeatureRecorder
from riskengine.core.model.inference import LoadedModel

__all__ = ["FEATURE_NAMES", "FeatureConfig", "FeatureExtractor", "FeatureRecorder", "LoadedModel"]
