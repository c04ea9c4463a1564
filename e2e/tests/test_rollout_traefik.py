"""The operator's rollouts through a real gateway: Traefik v3.6.12 on the local cluster
(e2e/traefik.py), in front of ModelDeployments installed by the chart, at the CRD's default of
2 replicas.

- ``gatewayAPI``: the operator's HTTPRoute, attached to Traefik's Gateway (a canary, and a
  blue/green switch);
- ``traefik``: the operator's weighted TraefikService, named by the user's HTTPRoute
  (``group: traefik.io, kind: TraefikService``);
- shadow with ``traefik``: the operator's mirroring TraefikService. Traefik's Gateway API
  provider has no RequestMirror (the rule answers 500), so ``gatewayAPI`` shadow stays
  checked on its objects (test_rollout_gateway.py, the unit tests).

At each canary step 400 requests, one after the other, each on a new connection and never
retried, measure the share each version really answers (within 3 points of the weight), and
a light background traffic (also never retried) runs through the whole rollout: any refused,
reset, timed-out or non-200 request fails the test. Each ModelDeployment has its own host
name on the one Gateway. Traffic goes only to Traefik's Service ClusterIP, and the mirror's
counters are read at its pods' addresses.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from e2e import stack as st
from e2e import traefik
from e2e.cluster.api import Cluster
from e2e.traffic import Tally, Traffic
from modeldeploy.operator import defaults as d
from modeldeploy.server import contract as c

from .rollout_env import Env, make_env
from .test_rollout_bluegreen import preview_ready

pytestmark = pytest.mark.cluster

REQUESTS = 400
TOLERANCE = 0.03  # points of share, on 400 requests
REPLICAS = 2  # the CRD's default
# Traefik applies a provider's change at most every providersThrottleDuration (2 s by
# default) after it saw it; a TraefikService has no status to say so.
SETTLE = 5.0
CANARY = {"canary": {"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}, {"pause": {}}]}}
# Not the CRD's 5m: the analysis passes in seconds here. autoPromote off (the default is on)
# keeps the good shadow mirrored until the counted requests are in; the promote control
# then promotes it, as a person would.
SHADOW = {"shadow": {"duration": "20s", "autoPromote": False}}
BLUE_GREEN = st.blue_green(pre="15s", auto_seconds=2)
# the ModelDeployments: gatewayAPI canary and blue/green, traefik canary and shadow
GW, BG, TS, SH = "gw", "bg", "ts", "sh"
HOSTS = {n: f"{n}.models.test" for n in (GW, BG, TS, SH)}
STRATEGIES = {GW: CANARY, BG: BLUE_GREEN, TS: CANARY, SH: SHADOW}
Weights = list[tuple[str, int]]


@pytest.fixture(scope="module")
def gateway(cluster: Cluster) -> Iterator[traefik.Gateway]:
    with traefik.installed(cluster) as gw:
        yield gw


def provider(name: str, gw: traefik.Gateway) -> dict[str, Any]:
    if name in (GW, BG):
        route = f"{name}-route"
        return {
            "gatewayAPI": {
                "httpRoute": route,
                "parentRefs": [gw.parent_ref],
                "hostnames": [HOSTS[name]],
            }
        }
    return {"traefik": {"traefikService": name}}


@pytest.fixture(scope="module")
def env(gateway: traefik.Gateway, cluster: Cluster) -> Iterator[Env]:
    """The chart after Traefik's CRDs (the operator sees the APIs), the four v1s started
    together, and a user's HTTPRoute to each TraefikService."""
    with make_env(cluster, {"v1": "good", "v2": "good", "v3": "diverging"}) as e:
        for name, strategy in STRATEGIES.items():
            e.deploy(name, "v1", strategy, replicas=REPLICAS, provider=provider(name, gateway))
        for name in STRATEGIES:
            e.healthy(name, "v1")
        for name in (TS, SH):
            user_route(e, gateway, name)
        for name in STRATEGIES:
            st.wait(
                f"{name} answering through the gateway",
                lambda name=name: traefik.send(gateway, 1, HOSTS[name])[0] == {"v1": 1},
                60,
            )
        yield e


def user_route(env: Env, gw: traefik.Gateway, name: str) -> None:
    """What a user of the ``traefik`` provider writes: a route to the operator's
    TraefikService (an IngressRoute would do the same)."""
    route = f"{name}-route"
    backend = {"group": "traefik.io", "kind": "TraefikService", "name": name}
    env.cluster.apply(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": route, "namespace": env.stack.namespace},
            "spec": {
                "parentRefs": [gw.parent_ref],
                "hostnames": [HOSTS[name]],
                "rules": [{"backendRefs": [backend]}],
            },
        }
    )
    st.wait(
        f"HTTPRoute {route} accepted by Traefik",
        lambda: traefik.route_accepted(env.cluster, env.stack.namespace, route),
        60,
    )


def route_weights(env: Env, name: str) -> Weights:
    obj = env.cluster.kubectl_json("get", "httproute", f"{name}-route", "-n", env.stack.namespace)
    return [(b["name"], b["weight"]) for b in obj["spec"]["rules"][0]["backendRefs"]]


def traefik_service(env: Env, name: str) -> dict[str, Any]:
    obj = env.cluster.kubectl_json("get", "traefikservice", name, "-n", env.stack.namespace)
    return dict(obj["spec"])


def service_weights(env: Env) -> Weights:
    spec = traefik_service(env, TS)
    return [(s["name"], s["weight"]) for s in (spec.get("weighted") or {}).get("services", [])]


def background(gw: traefik.Gateway, name: str) -> Traffic:
    return Traffic(
        gw.service_ip,
        port=traefik.PORT,
        rate=5,
        retries=0,
        max_seconds=400,
        hostname=HOSTS[name],
    )


def assert_all_answered(tally: Tally) -> None:
    assert tally.sent > 0 and tally.lost == 0, tally.as_dict()
    assert tally.answered == tally.sent == sum(tally.by_version.values()), tally.as_dict()


def measure(gw: traefik.Gateway, name: str, v2: float) -> dict[str, int]:
    """400 requests: none failed, and each version's share within 3 points."""
    answers, errors = traefik.send(gw, REQUESTS, HOSTS[name])
    assert not errors, errors[:10]
    assert sum(answers.values()) == REQUESTS, answers
    share = answers["v2"] / REQUESTS
    print(f"{name} at {v2:.0%}: {dict(answers)} over {REQUESTS} requests")
    assert set(answers) <= {"v1", "v2"}, answers  # so v1's share is 1 - share
    assert abs(share - v2) <= TOLERANCE, answers
    return dict(answers)


def paused(env: Env, name: str, step: int) -> None:
    """Wait for the rollout to pause at ``step`` (a promote just sent may not be read yet)."""

    def at_pause() -> bool:
        s = st.status(env.stack, name)
        return s.get("phase") == "Paused" and s.get("currentStep") == step

    st.wait(f"{name} paused at {step}", at_pause, 180, detail=lambda: st.describe(env.stack, name))


def canary_through_traefik(
    env: Env, gw: traefik.Gateway, name: str, weights: Callable[[], Weights]
) -> dict[int, dict[str, int]]:
    """v1 -> v2 with two pauses: the measured answers at 25%, 75% and once promoted."""
    blue, green = f"{name}-blue", f"{name}-green"
    measured: dict[int, dict[str, int]] = {}
    with background(gw, name) as bg:
        env.deploy(name, "v2", CANARY, replicas=REPLICAS, provider=provider(name, gw))
        for step, weight in ((1, 25), (3, 75)):
            paused(env, name, step)
            want = [(blue, 100 - weight), (green, weight)]
            # the full weight once the candidate's pods for it are Ready
            st.wait(f"{name} at {weight}%", lambda want=want: weights() == want, 120)
            time.sleep(SETTLE)
            measured[weight] = measure(gw, name, weight / 100)
            env.control(name, f"promote/{step}")
        done = env.finished(name, "v2")
        assert done["outcome"] == "Promoted", done
        st.wait(f"{name} all on green", lambda: weights() == [(green, 100)], 30)
        time.sleep(SETTLE)
        answers, errors = traefik.send(gw, REQUESTS, HOSTS[name])
        assert not errors and answers == Counter({"v2": REQUESTS}), (answers, errors[:10])
        measured[100] = dict(answers)
    assert_all_answered(bg.tally)
    assert set(bg.tally.by_version) == {"v1", "v2"}, bg.tally.as_dict()
    print(f"{name}: background {bg.tally.as_dict()}")
    return measured


def test_gateway_api_canary_through_traefik(env: Env, gateway: traefik.Gateway) -> None:
    canary_through_traefik(env, gateway, GW, lambda: route_weights(env, GW))
    assert traefik.route_accepted(env.cluster, env.stack.namespace, f"{GW}-route")


def test_traefik_provider_canary(env: Env, gateway: traefik.Gateway) -> None:
    canary_through_traefik(env, gateway, TS, lambda: service_weights(env))
    obj = env.cluster.kubectl_json("get", "traefikservice", TS, "-n", env.stack.namespace)
    owners = obj["metadata"]["ownerReferences"]
    assert owners[0]["kind"] == "ModelDeployment" and owners[0]["name"] == TS


def test_gateway_api_blue_green_through_traefik(env: Env, gateway: traefik.Gateway) -> None:
    """The switch through the gateway: clients on v1 until the route moves, then on v2; the
    preview analysed on its own Service; no request failed on either."""
    green = f"{BG}-green"
    with background(gateway, BG) as bg:
        env.deploy(BG, "v2", BLUE_GREEN, replicas=REPLICAS, provider=provider(BG, gateway))
        st.wait(
            "preview Service on the candidate",
            lambda: preview_ready(env, BG),
            120,
            detail=lambda: st.describe(env.stack, BG),
        )
        assert set(bg.snapshot().by_version) == {"v1"}, bg.tally.as_dict()
        with env.traffic(f"{BG}-preview", rate=10, retries=0, max_seconds=200, seed=3) as pv:
            done = env.finished(BG, "v2")
        assert done["outcome"] == "Promoted", done
        st.wait("route all on green", lambda: route_weights(env, BG) == [(green, 100)], 30)
        st.wait("clients answered by v2", lambda: set(bg.recent_versions(3)) == {"v2"}, 60)
    assert_all_answered(bg.tally)
    assert_all_answered(pv.tally)
    assert set(pv.tally.by_version) == {"v2"}, pv.tally.as_dict()
    print(f"{BG}: gateway {bg.tally.as_dict()}, preview {pv.tally.as_dict()}")


def mirroring(main: str, mirror: str) -> dict[str, Any]:
    port = c.DEFAULT_PORT
    mirrors = [{"name": mirror, "port": port, "percent": 100}]
    return {"mirroring": {"name": main, "port": port, "mirrors": mirrors}}


def slot_pods(slot: str) -> str:
    return f"{d.LABEL_NAME}={SH},{d.LABEL_SLOT}={slot}"


def test_shadow_through_traefik_mirroring(env: Env, gateway: traefik.Gateway) -> None:
    ns = env.stack.namespace
    blue, green = f"{SH}-blue", f"{SH}-green"
    # A good shadow: mirrored once Ready, every request copied, clients answered by v1.
    with background(gateway, SH) as bg:
        env.deploy(SH, "v2", SHADOW, replicas=REPLICAS, provider=provider(SH, gateway))
        st.wait(
            "the shadow mirrored",
            lambda: traefik_service(env, SH) == mirroring(blue, green),
            180,
            detail=lambda: st.describe(env.stack, SH),
        )
        time.sleep(SETTLE)
    assert_all_answered(bg.tally)
    assert set(bg.tally.by_version) == {"v1"}, bg.tally.as_dict()
    shadow_before = traefik.settled_total(env.cluster, ns, slot_pods("green"))
    stable_before = traefik.settled_total(env.cluster, ns, slot_pods("blue"))
    answers, errors = traefik.send(gateway, REQUESTS, HOSTS[SH])
    assert not errors, errors[:10]
    assert answers == Counter({"v1": REQUESTS}), answers  # clients never saw the shadow
    copies = traefik.settled_total(env.cluster, ns, slot_pods("green")) - shadow_before
    served = traefik.settled_total(env.cluster, ns, slot_pods("blue")) - stable_before
    print(f"shadow: {REQUESTS} sent, stable served {served}, shadow got {copies} copies")
    assert served == REQUESTS and copies == REQUESTS

    with background(gateway, SH) as bg:
        # steps: wait ready, analysis (divergence included), pause, promote
        paused(env, SH, 2)
        env.control(SH, "promote/2")
        done = env.finished(SH, "v2")
        assert done["outcome"] == "Promoted", done
        st.wait("clients answered by v2", lambda: set(bg.recent_versions(3)) == {"v2"}, 60)
        before_v3 = bg.snapshot().by_version
        # A diverging shadow: mirrored, compared, rolled back; clients only ever get v2.
        env.deploy(SH, "v3", SHADOW, replicas=REPLICAS, provider=provider(SH, gateway))
        st.wait(
            "v3 mirrored",
            lambda: traefik_service(env, SH) == mirroring(green, blue),
            180,
            detail=lambda: st.describe(env.stack, SH),
        )
        rolled = env.finished(SH, "v3")
        assert rolled["outcome"] == "RolledBack", rolled
        assert "ModelPredictionDivergence" in rolled["message"], rolled
        st.wait(
            "weighted on v2 again",
            lambda: traefik_service(env, SH) == {"weighted": {"services": [service(green)]}},
            30,
        )
        during_v3 = bg.snapshot().by_version - before_v3
    assert_all_answered(bg.tally)
    assert set(during_v3) == {"v2"}, (during_v3, bg.tally.as_dict())


def service(name: str) -> dict[str, Any]:
    return {"name": name, "port": c.DEFAULT_PORT, "weight": 100}
