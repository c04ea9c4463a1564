"""The ModelDeployment API: ONE definition, from which ``crds/`` is generated.

The OpenAPI schema carries the defaults (the apiserver fills them in, so ``kubectl get -o
yaml`` shows what the operator will do) and CEL ``x-kubernetes-validations`` for what a schema
cannot say (exactly one strategy, weights that never decrease...), so a bad manifest is refused
by the apiserver with a clear message instead of failing later in the operator. The status
schema is declared in full because the apiserver prunes undeclared status fields.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.operator import defaults as d
from modeldeploy.operator.schema.openapi import Schema, _obj, _str
from modeldeploy.operator.schema.scaling import SCALE_SUBRESOURCE
from modeldeploy.operator.schema.spec import spec_schema
from modeldeploy.operator.schema.status import status_schema

__all__ = ["Schema", "crd", "printer_columns", "spec_schema", "status_schema"]


def printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Strategy", "type": "string", "jsonPath": ".status.strategy"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Stable", "type": "string", "jsonPath": ".status.stableVersion"},
        {"name": "Candidate", "type": "string", "jsonPath": ".status.candidateVersion"},
        {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
        {"name": "Step", "type": "integer", "jsonPath": ".status.currentStep", "priority": 1},
        {
            "name": "Ready",
            "type": "string",
            "priority": 1,
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
        {
            "name": "Retrain",
            "type": "string",
            "jsonPath": ".status.retrain.phase",
            "priority": 1,
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object, as applied to a cluster and written to crds/."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{d.PLURAL}.{d.GROUP}",
            "labels": {
                "app.kubernetes.io/name": "modeldeploy",
                "app.kubernetes.io/component": "crd",
            },
        },
        "spec": {
            "group": d.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": d.KIND,
                "listKind": f"{d.KIND}List",
                "plural": d.PLURAL,
                "singular": d.SINGULAR,
                "shortNames": list(d.SHORT_NAMES),
                "categories": ["all", "modeldeploy"],
            },
            "versions": [
                {
                    "name": d.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}, "scale": SCALE_SUBRESOURCE},
                    "additionalPrinterColumns": printer_columns(),
                    "schema": {
                        "openAPIV3Schema": _obj(
                            {
                                "apiVersion": _str(),
                                "kind": _str(),
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            required=["spec"],
                            description="A model rolled out safely: canary, "
                            "blue/green or shadow, gated on Prometheus.",
                        )
                    },
                }
            ],
        },
    }
