#!/usr/bin/env bash
# Installs napari-zarrnii with napari and Qt, writes the generated sample as an
# OME-Zarr pyramid, and opens it in napari.  Without a display it runs on a
# virtual X screen and saves a screenshot instead of keeping the window open.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/_setup.sh "all,testing"
if [ -n "${DISPLAY:-}" ]; then
  .venv/bin/python -m napari_zarrnii._demo "$@"
else
  xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python -m napari_zarrnii._demo --screenshot demo-output/demo.png "$@"
fi
