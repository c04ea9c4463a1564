# The two commands the README opens with. Each does its own set-up from nothing.
.PHONY: demo demo-loop test setup unit lint crds clean bench-operator

demo: setup
	.venv/bin/python -m e2e.demo

# The retraining loop with no human: drift, a training Job, the gate, a canary (README).
demo-loop: setup
	.venv/bin/python -m e2e.demo_loop

test: setup
	$(MAKE) --no-print-directory lint
	MODELDEPLOY_REQUIRE_HARNESS=1 .venv/bin/python -m pytest tests e2e/tests --durations=25

setup:
	scripts/setup.sh

# Fast checks without the cluster.
unit:
	MODELDEPLOY_SKIP_CLUSTER_BUILD=1 scripts/setup.sh
	.venv/bin/python -m pytest tests -m "not cluster"

# Static checks (needs .venv from scripts/setup.sh): ruff on the whole tree, mypy --strict on
# the package code (the files of [tool.mypy] in pyproject.toml), and the import boundaries.
lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	scripts/lint_imports.sh

# One operator replica against N ModelDeployments (default 500; also 100 and 250) on the local
# cluster's fake node (kwok, built on first use): see "The operator at scale" in README.md.
N ?= 500
bench-operator:
	.venv/bin/python -m e2e.scale.bench --n $(N)

clean:
	-.venv/bin/python -m e2e.cluster down
	rm -rf .venv
