"""The operator at scale: fake-node pods, a synthetic exporter, the benchmark."""
