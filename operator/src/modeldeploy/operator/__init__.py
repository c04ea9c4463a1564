"""The ModelDeployment rollout operator (kopf underneath)."""
