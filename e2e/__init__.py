"""End-to-end harness: a real local Kubernetes cluster built from Go modules, and its tests."""
