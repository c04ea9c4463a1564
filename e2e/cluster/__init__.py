"""The local cluster: kind without Docker (see README, section "The local cluster").

`python -m e2e.cluster build|up|down|status|env`; tests use the `cluster` fixture from
`e2e.cluster.fixtures`, which yields an `e2e.cluster.api.Cluster`.
"""
