pytest_plugins = ["e2e.cluster.fixtures"]
