"""The model bundle format and the production model server.

Kept import-free on purpose: ``modeldeploy.server.contract`` must be importable by the
operator without pulling in FastAPI or scikit-learn.
"""
