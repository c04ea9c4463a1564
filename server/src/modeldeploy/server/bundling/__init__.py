"""Bundling users' own models: schema inference, card text, evaluation, the one call.

``bundle_model(model, data, target, name=..., version=..., out=...)`` is what
``modeldeploy bundle`` runs; ``markdown.card_markdown`` renders a card for people.
"""

from __future__ import annotations

from modeldeploy.server.bundling.build import bundle_model, coerce_labels
from modeldeploy.server.bundling.schema import SchemaError

__all__ = ["SchemaError", "bundle_model", "coerce_labels"]
