#!/usr/bin/env bash
# Installs what napari-zarrnii needs on a fresh Debian/Ubuntu machine:
# a virtual X screen with Mesa OpenGL and the xcb libraries Qt 6 loads (apt),
# then a virtual environment in .venv with the package and the given extras.
# Usage: source scripts/_setup.sh EXTRAS   (EXTRAS like "testing" or "all")
set -euo pipefail
extras="${1:-all}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

apt_packages=(
  xvfb xauth
  libgl1 libegl1 libgl1-mesa-dri libglx-mesa0
  libfontconfig1 libdbus-1-3 libxkbcommon-x11-0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-xinerama0 libxcb-xinput0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0
)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python_bin="${PYTHON:-python3}"
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "==> creating $root/.venv"
  "$python_bin" -m venv "$root/.venv"
fi
echo "==> installing napari-zarrnii[$extras] into .venv"
"$root/.venv/bin/python" -m pip install -q --upgrade pip
"$root/.venv/bin/python" -m pip install -q -e "$root[$extras]"
