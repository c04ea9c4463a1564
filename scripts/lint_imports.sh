#!/usr/bin/env bash
# Check the import boundaries of DESIGN.md ("Boundaries") with import-linter, on the package
# as installed in .venv (the contracts are in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/lint-imports --no-cache
