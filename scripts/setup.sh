#!/usr/bin/env bash
# Idempotent set-up: venv (.venv, Python 3.11), dependencies, the face-model assets and the
# ONNX build step. Re-running is cheap: installs are skipped while the requirement files
# are unchanged. Sourced by scripts/main.sh and scripts/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PY="${FACEDET3D_PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY="$cand"; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 is required (bpy 5.0.1, Blender as a module, exists only for 3.11); set FACEDET3D_PYTHON" >&2; exit 1; }

[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY="$ROOT/.venv/bin/python"
stamp=.venv/.facedet3d-installed
want="$(cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing dependencies into .venv (torch is large: a few minutes the first time)"
  "$VPY" -m pip install -q --upgrade pip -c constraints.txt
  "$VPY" -m pip install -q -c constraints.txt -r requirements.txt
  # mediapipe's wheel declares opencv-contrib-python (clashes with opencv-python-headless) and
  # sounddevice; the face landmarker needs neither. Its real needs are in requirements.txt.
  "$VPY" -m pip install -q --no-deps mediapipe==1.2.3
  "$VPY" -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

# Blender 4.2 LTS and 4.5 LTS as bpy-only environments (no torch, no backend): the stock-Blender
# tests install the built zip into them (blender_tests/test_bl_stock.py). ~350 MB each, once.
# FACEDET3D_LTS=0 skips them (those tests then say they were skipped).
if [ "${FACEDET3D_LTS:-1}" != 0 ]; then
  for v in 4.2.23 4.5.15; do
    d=".venv-bpy$(echo "$v" | cut -d. -f1,2 | tr -d .)"
    if [ "$(cat "$d/.facedet3d-bpy" 2>/dev/null)" != "$v" ]; then
      echo "setup: bpy $v environment in $d (Blender LTS tests)"
      { [ -x "$d/bin/python" ] || "$PY" -m venv "$d"; } && "$d/bin/python" -m pip install -q -c constraints.txt "bpy==$v" \
        && echo "$v" > "$d/.facedet3d-bpy" || echo "setup: bpy $v did not install; its tests will be skipped" >&2
    fi
  done
fi

# Eevee and Workbench render headless through Mesa's EGL; without it they abort the process.
if ! ldconfig -p 2>/dev/null | grep -q libEGL_mesa; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Mesa's EGL for headless Eevee/Workbench"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl-mesa0 libgl1-mesa-dri libgles2 >/dev/null) \
      || echo "setup: could not install Mesa EGL; Eevee/Workbench renders will be unavailable" >&2
  else
    echo "setup: Mesa EGL (libegl-mesa0, libgl1-mesa-dri) missing; Eevee/Workbench renders need it" >&2
  fi
fi

# `facedet3d render` runs the add-on's batch.py: the backend ships no add-on files, so say where
# this checkout's add-on is.
export FACEDET3D_ADDON_DIR="${FACEDET3D_ADDON_DIR:-$ROOT/addon}"

# Face-model files: the offline mirror beside the checkout when present, else the network.
if [ -z "${FACEDET3D_ASSET_MIRROR:-}" ] && [ -d "$ROOT/../shared/assets" ]; then
  export FACEDET3D_ASSET_MIRROR="$(cd "$ROOT/../shared/assets" && pwd)"
fi
"$VPY" -m facedet3d.cli assets fetch | tail -n 1
"$VPY" -c 'from facedet3d.fit import regressor as r; p = r.onnx_path(); p.is_file() or r.export_onnx(p); print("setup: regressor ONNX at", p)' 2>&1 | grep -v Warning || true
