#!/usr/bin/env bash
# Check the import boundaries of DESIGN.md ("Boundaries") with import-linter.
# import-linter walks folders from the root package, which an editable install with mapped
# folders (operator/, server/) does not have; so check a plain install in a scratch folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$root/.venv/bin/python" -m pip install -q --no-deps --no-compile --target "$scratch/site" "$root" 2>/dev/null
cp "$root/pyproject.toml" "$scratch/"
cd "$scratch"
PYTHONPATH="$scratch/site" "$root/.venv/bin/lint-imports" --no-cache
