"""modeldeploy: safe rollouts of machine-learning models on Kubernetes.

The package has two halves that share only ``modeldeploy.server.contract``:
``modeldeploy.server`` (bundle format and model server) and ``modeldeploy.operator``
(the rollout operator). This top level holds only the command-line entry point.
"""

__version__ = "0.1.0"
