#!/usr/bin/env bash
# Set up Latih on this machine. Safe to run again: it only adds what is missing.
#
#   bash scripts/setup.sh                  # .venv with torch + latih (+ dev tools)
#   bash scripts/setup.sh --with-browser   # also Debian's Chromium for the browser test
#
# Everything comes from package registries through pip and apt-get; nothing else is
# downloaded (no model hub, no browser build of Playwright's own).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

WITH_BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) WITH_BROWSER=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --with-browser or --help)" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python3}"
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
start=$SECONDS
say() { printf '[setup %3ds] %s\n' "$((SECONDS - start))" "$*"; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv .venv
else
  say ".venv exists"
fi
PIP=(.venv/bin/python -m pip install --disable-pip-version-check)

# torch first, pinned, so that the project install does not pick another build.
if .venv/bin/python - "${TORCH_PINS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
want = dict(p.split("==") for p in sys.argv[1:])
sys.exit(0 if all(version(n).split("+")[0] == v for n, v in want.items()) else 1)
PY
then
  say "torch and torchvision already installed"
else
  say "installing ${TORCH_PINS[*]}"
  "${PIP[@]}" "${TORCH_PINS[@]}"
fi

say "installing latih (editable) with its dev tools"
"${PIP[@]}" -e '.[dev]'

if [ "$WITH_BROWSER" = 1 ]; then
  if [ -x /usr/bin/chromium ]; then
    say "chromium present: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  else
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    say "installing Debian's chromium with apt-get"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation
  fi
fi

say "done"
