#!/usr/bin/env bash
# Installs everything (system packages, .venv, package with the test and docs extras),
# type-checks src, builds the documentation site strictly (a warning fails), and runs
# the whole test suite, GUI tests included, on a virtual X screen with Mesa GL.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/_setup.sh testing,docs
.venv/bin/npe2 validate napari-zarrnii
echo "==> type checking (mypy src)"
.venv/bin/mypy src
echo "==> building the documentation site (mkdocs build --strict)"
site="$(mktemp -d)"
# not -q: mkdocs 1.6 drops warnings below ERROR when quiet, and --strict then passes them
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict -d "$site"
rm -rf "$site"
echo "==> running tests"
set +e
xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "no tests were collected" >&2
fi
exit "$status"
