"""What the ``traefik`` provider renders: one TraefikService, weighted or mirroring, byte for
byte (written out in full, not rebuilt through the router), and the CRD's admission of the
provider's spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from opworld import spec
from test_operator_routers_render import PORT, canary, expected_metadata, shadow, traffic

from modeldeploy.operator.builders import Owner
from modeldeploy.operator.desired import children
from modeldeploy.operator.model import Actions, Spec, SpecError
from modeldeploy.operator.schema import crd

TRAEFIK = {"traefik": {"traefikService": "iris-ts"}}
CANARY = {"canary": {"steps": [{"setWeight": 30}]}}


def traefik_service(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": expected_metadata("iris-ts", "traffic"),
        "spec": body,
    }


def weighted(*backends: tuple[str, int]) -> dict[str, Any]:
    return traefik_service(
        {"weighted": {"services": [{"name": n, "port": PORT, "weight": w} for n, w in backends]}}
    )


def mirroring(main: str, mirror: str) -> dict[str, Any]:
    return traefik_service(
        {
            "mirroring": {
                "name": main,
                "port": PORT,
                "mirrors": [{"name": mirror, "port": PORT, "percent": 100}],
            }
        }
    )


@pytest.mark.parametrize("weight", [1, 25, 33, 50, 67, 99])
def test_canary_weights(weight: int) -> None:
    sp = spec(strategy=CANARY, provider=TRAEFIK)
    assert traffic(sp, canary(weight)) == [
        weighted(("iris-blue", 100 - weight), ("iris-green", weight))
    ]


def test_a_backend_at_weight_0_is_left_out() -> None:
    """Traefik drops a whole TraefikService when one Service it names has no Serving
    endpoint; a candidate at 0 may have none yet, a stable at 0 after the canary's 100%."""
    sp = spec(strategy=CANARY, provider=TRAEFIK)
    assert traffic(sp, canary(0)) == [weighted(("iris-blue", 100))]
    assert traffic(sp, canary(100)) == [weighted(("iris-green", 100))]


def test_without_a_candidate_everything_goes_to_the_stable() -> None:
    sp = spec(strategy=CANARY, provider=TRAEFIK)
    assert traffic(sp, Actions(stable_slot="green")) == [weighted(("iris-green", 100))]
    assert traffic(sp, Actions()) == [weighted(("iris-blue", 100))]  # blue is the first slot


def test_blue_green_switch() -> None:
    sp = spec(strategy={"blueGreen": {}}, provider=TRAEFIK)
    assert traffic(sp, canary(0)) == [weighted(("iris-blue", 100))]
    after = traffic(sp, canary(0, stable="green", candidate="blue"))
    assert after == [weighted(("iris-green", 100))]


def test_shadow_mirrors_every_request_once_the_shadow_is_ready() -> None:
    sp = spec(strategy={"shadow": {}}, provider=TRAEFIK)
    starting = Actions(stable_slot="blue", candidate_slot="green", mirror=True)
    assert traffic(sp, starting) == [weighted(("iris-blue", 100))]
    ready = Actions(stable_slot="blue", candidate_slot="green", mirror=True, candidate_ready=True)
    assert traffic(sp, ready) == [mirroring("iris-blue", "iris-green")]
    # the mirror follows the slots: green stable, blue the shadow
    other = Actions(stable_slot="green", candidate_slot="blue", mirror=True, candidate_ready=True)
    assert traffic(sp, other) == [mirroring("iris-green", "iris-blue")]
    # promoted or rolled back: no candidate, a weighted service on the stable again
    assert traffic(sp, Actions(stable_slot="green")) == [weighted(("iris-green", 100))]
    # the render tests' shadow() has no Ready candidate: nothing is mirrored to it
    assert traffic(sp, shadow()) == [weighted(("iris-blue", 100))]


def test_key_order_is_the_same_too() -> None:
    """Dicts compare equal in any order; the bytes a server-side apply sends do not."""
    sp = spec(strategy=CANARY, provider=TRAEFIK)
    assert json.dumps(traffic(sp, canary(25))) == json.dumps(
        [weighted(("iris-blue", 75), ("iris-green", 25))]
    )
    sp = spec(strategy={"shadow": {}}, provider=TRAEFIK)
    ready = Actions(stable_slot="blue", candidate_slot="green", mirror=True, candidate_ready=True)
    assert json.dumps(traffic(sp, ready)) == json.dumps([mirroring("iris-blue", "iris-green")])


def test_the_spec_reads_the_provider() -> None:
    sp = spec(strategy=CANARY, provider=TRAEFIK)
    assert sp.provider == "traefik" and sp.provider_spec == {"traefikService": "iris-ts"}
    with pytest.raises(SpecError, match="exactly one traffic provider"):
        spec(provider={**TRAEFIK, "istio": {"virtualService": "v"}})


def _traffic_schema() -> dict[str, Any]:
    props = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    schema: dict[str, Any] = props["spec"]["properties"]["trafficProvider"]
    return schema


def test_the_crd_schema_has_the_provider() -> None:
    schema = _traffic_schema()
    traefik = schema["properties"]["traefik"]
    assert traefik["required"] == ["traefikService"]
    assert traefik["properties"]["traefikService"]["type"] == "string"
    rules = [r["rule"] for r in schema["x-kubernetes-validations"]]
    assert any("traefik" in r for r in rules), rules


def test_the_example_routes_to_the_service_the_operator_owns() -> None:
    """examples/traefik.yaml: the ModelDeployment's TraefikService is the one its
    IngressRoute names."""
    path = Path(__file__).resolve().parents[2] / "examples" / "traefik.yaml"
    md, ingress = (doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    sp = Spec.from_body(md, default_image="localhost/modeldeploy-server:dev")
    owner = Owner(name=md["metadata"]["name"], namespace=md["metadata"]["namespace"], uid="u")
    (ts,) = children(owner, sp, Actions(stable_slot="blue"), with_rule=False)[-1:]
    assert ts["kind"] == "TraefikService"
    (service,) = ingress["spec"]["routes"][0]["services"]
    assert (service["kind"], service["name"]) == ("TraefikService", ts["metadata"]["name"])
    assert ts["metadata"]["namespace"] == ingress["metadata"]["namespace"]
