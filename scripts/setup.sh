#!/usr/bin/env bash
# Install what the pipeline and the tests need, once: Debian packages (TTS engines, sound theme)
# and the pinned venv .venv. Re-running is cheap: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in $(cat envs/apt.txt); do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.requirements.sha1
want=$(cat envs/requirements.txt envs/requirements-nodeps.txt pyproject.toml | sha1sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing the Python venv .venv (about 3 minutes, 8.6 GB: torch 2.9.1 is the CUDA build)"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # torch first, alone: later installs repeat the pin so the resolver never swaps it.
  .venv/bin/pip install -q --disable-pip-version-check torch==2.9.1 torchaudio==2.9.1
  .venv/bin/pip install -q --disable-pip-version-check -r envs/requirements.txt
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -r envs/requirements-nodeps.txt
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
