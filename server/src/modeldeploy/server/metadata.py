"""The Open Inference Protocol model metadata (``GET /v2/models/{name}``) of a card.

``inputs`` lists exactly what a request must carry: one tensor per feature, named after
it, with the datatype a KServe V2 client sends for it (``BYTES`` for string categories,
``BOOL`` for booleans, ``INT64`` for integers, ``FP64`` otherwise). All-numeric models also
take one ``[rows, features]`` FP tensor; that layout is described under ``parameters``
only, so a client that builds its request from ``inputs`` sends one consistent layout.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.server.card import BOOLEAN, CLASSIFICATION, INTEGER, FeatureSpec, ModelCard


def input_datatype(spec: FeatureSpec) -> str:
    if spec.kind == BOOLEAN:
        return "BOOL"
    if spec.string_categories:
        return "BYTES"
    if spec.kind == INTEGER:
        return "INT64"
    return "FP64"


def label_datatype(classes: tuple[Any, ...]) -> str:
    if classes and all(isinstance(c, str) for c in classes):
        return "BYTES"
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int) for c in classes):
        return "INT64"
    return "FP64"


def model_metadata_of(card: ModelCard, role: str, sha256: str) -> dict[str, Any]:
    classification = card.output.kind == CLASSIFICATION
    outputs: list[dict[str, Any]] = [
        {
            "name": "predict",
            "datatype": label_datatype(card.output.classes) if classification else "FP64",
            "shape": [-1],
        }
    ]
    if classification:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(card.output.classes)]}
        )
    numeric = all(input_datatype(f) in ("FP64", "INT64") for f in card.features)
    return {
        "name": card.name,
        "versions": [card.version],
        "platform": "sklearn",
        "inputs": [
            {"name": f.name, "datatype": input_datatype(f), "shape": [-1]} for f in card.features
        ],
        "outputs": outputs,
        "parameters": {
            "features": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "minimum": f.minimum,
                    "maximum": f.maximum,
                    "categories": list(f.categories),
                    "allow_unseen": f.allow_unseen,
                }
                for f in card.features
            ],
            "classes": list(card.output.classes),
            "positive_class": card.output.positive_class,
            "role": role,
            "sha256": sha256 or None,
            # The alternative layout for all-numeric models: one [rows, features] tensor.
            "matrix_input": {"datatype": "FP64", "shape": [-1, len(card.features)]}
            if numeric
            else None,
        },
    }
