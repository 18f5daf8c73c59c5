"""The Streamlit dashboard (``riskengine dashboard``); pages live in ``views/``."""
