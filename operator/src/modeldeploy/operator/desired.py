"""Everything a ModelDeployment owns for one decision of the engine, in apply order."""

from __future__ import annotations

from modeldeploy.operator.builders import (
    Owner,
    deployment,
    disruption_budget,
    horizontal_pod_autoscaler,
    services,
)
from modeldeploy.operator.model import Actions, Json, Spec
from modeldeploy.operator.promrules import prometheus_rule
from modeldeploy.operator.routers import router_for


def children(
    owner: Owner, spec: Spec, actions: Actions, *, with_rule: bool, with_traffic: bool = True
) -> list[Json]:
    """Make before break, in apply order: the Deployments that run pods first (a route never
    points at a Service without pods behind it), then the Services and the router's objects,
    and the Deployments scaled to zero last (no Service or route still points at their pods
    when they start to go: after a blue/green rollback the preview Service has moved to the
    stable before the candidate's pods leave).

    A PodDisruptionBudget per slot Deployment and the HorizontalPodAutoscaler, when the spec
    asks for them, come with the Services (``converge`` deletes the ones the spec no longer
    asks for).

    ``with_traffic=False`` leaves out the router's objects (the cluster lacks their API),
    ``with_rule=False`` the PrometheusRule.
    """
    running = [dep for dep in actions.deployments if dep.replicas > 0]
    leaving = [dep for dep in actions.deployments if dep.replicas == 0]
    objs: list[Json] = [deployment(owner, spec, dep) for dep in running]
    objs += services(owner, spec, actions)
    budgets = (disruption_budget(owner, spec, dep.slot) for dep in actions.deployments)
    objs += [pdb for pdb in budgets if pdb is not None]
    if (hpa := horizontal_pod_autoscaler(owner, spec.autoscaling)) is not None:
        objs.append(hpa)
    if with_traffic:
        objs += router_for(spec).objects(owner, spec, actions)
    objs += [deployment(owner, spec, dep) for dep in leaving]
    if with_rule and actions.prometheus_rule:
        objs.append(prometheus_rule(owner, spec))
    return objs
