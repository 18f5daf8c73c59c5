"""Learned risk model: features shared by the engine and training, training, fast inference.

``riskengine model train`` fits a calibrated classifier on replayed, labelled logins;
``policy.model = "<dir>"`` makes the engine blend its probability into the risk.
"""

from riskengine.model.features import FEATURE_NAMES, FeatureConfig, FeatureExtractor, FeatureRecorder
from riskengine.model.inference import LoadedModel

__all__ = ["FEATURE_NAMES", "FeatureConfig", "FeatureExtractor", "FeatureRecorder", "LoadedModel"]
