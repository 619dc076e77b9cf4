#!/usr/bin/env bash
# Builds DeepMind Lab's Python module (`deepmind_lab`) from pinned sources and installs it.
#
#   scripts/build_dmlab.sh --offline DIR [--python PY]   # archives in DIR (e.g. ../shared/dmlab/sources)
#   scripts/build_dmlab.sh --online [--python PY]        # downloads the same pinned commits
#
# Sources: google-deepmind/lab b1db91a with abseil 20230125.3, bazel-skylib 1.3.0, rules_cc,
# rules_java and platforms at the commits below; C libraries (zlib, png, jpeg, libxml2, glib,
# lua 5.1, eigen, SDL2, OSMesa/EGL) from the distribution's -dev packages. Offline archives are
# checked by sha256; every unpacked tree (offline or downloaded) by a content hash of its files
# (scripts/dmlab/tree_hash.py), the same pin for both modes. The offline lab archive lacks 305
# asset files (scripts/dmlab/lab-missing-files.txt, see docs/DMLAB.md); the online one is complete.
#
# The module is built against PY's numpy (a module built on numpy 1.x headers does not import
# under numpy 2) and its wheel is cached under ${IMPALA_MU_CACHE:-~/.cache/impala-mu}/dmlab/KEY/,
# KEY = the pins, the mode, the recipe version, the OS release and PY's ABI and numpy version:
# a second run with the same KEY only pip-installs the cached wheel. Needs: bazel-bootstrap (Bazel
# 4.2.3) and the packages in scripts/dmlab/apt-build.txt; running it, those in apt-runtime.txt
# (`--apt` installs whichever of them are missing, as root).
# Other options: --jobs N (Bazel jobs, default: CPUs), --no-install (build/cache the wheel only),
# --print-wheel (print the cached wheel's path, or nothing; builds nothing).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECIPE="${HERE}/dmlab"
RECIPE_VERSION=2   # bump when the WORKSPACE, flags or patches change (invalidates cached wheels)

LAB_COMMIT=b1db91af5b4d2f3a24466f4632a3e5e1b0829cca
# name|offline archive|its sha256|upstream repository|commit|tree hash of the unpacked files
PINS=(
  "lab|lab-b1db91a.tar.zst|ab967945e2a74f10643b1e2d6d3c3eec4e919ebff30b79bcf3b6635c5c0bd6ab|google-deepmind/lab|${LAB_COMMIT}|9b29cbf2f655d7ae3dc22ad54b9405b1ffd719b66d16f1b431e1c47145384ac8"
  "abseil-cpp|abseil-cpp-20230125.3.tar.zst|d2d27de9c287acbb276dd3da30b7bf16255e1f85f36b8d259c504d3807a5648f|abseil/abseil-cpp|c2435f8342c2d0ed8101cb43adfd605fdc52dca2|ab30c1236970e02304586b2c555bb71737c6350d979c4fdebdefc9c87b4f3ecd"
  "bazel-skylib|bazel-skylib-1.3.0.tar.zst|5f48f13951f418a3150453469dd2a161fe74b2f04ee07a040eb0b0782d93e7a2|bazelbuild/bazel-skylib|6a17363a3c27dde70ab5002ad9f2e29aff1e1f4b|320aa7fbb801d938f276835258e62e1b98af187939d03bade4ed9941074d0523"
  "rules_cc|rules_cc-b1c40e1.tar.zst|6f9f9153c9017461949128fc124ccbd5d2311ab5e5851f283242edea00044deb|bazelbuild/rules_cc|b1c40e1de81913a3c40e5948f78719c28152486d|6112749308f01af21f1b770caa4ba3c02cbe91068962b75fd89bbfee53ae07ff"
  "rules_java|rules_java-7cf3cef.tar.zst|c01874d10133347a42cab6d22d7f26065abe8e63dcdaaa55695f6dd38b9ba11c|bazelbuild/rules_java|7cf3cefd652008d0a64a419c34c13bdca6c8f178|f28a5f1362fcc2a25f8b324fc1195b73a66b5dcec3e4d6851a4f5cf7a9407b41"
  "platforms|platforms-3fbc687.tar.zst|32608276b5c70f6cbc0aab5c6ffaae5253f81098f1873f10005e6e5174030eb0|bazelbuild/platforms|3fbc687756043fb58a407c2ea8c944bc2fe1d922|d525987aada2527e7c18dede004e90056166d6e552b9bd7c21948b77e6f50cf5"
)
# The offline lab archive's tree hash excludes nothing; the complete upstream archive's tree hash
# is checked with the missing files left out (they must all be there), against the same pin.
LAB_MISSING="${RECIPE}/lab-missing-files.txt"

MODE="" SRC="" PY="" JOBS="$(nproc)" INSTALL=1 APT=0 PRINT_WHEEL=0
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "build_dmlab: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --offline) MODE=offline; SRC="${2:?--offline needs the folder of archives}"; shift 2 ;;
    --online) MODE=online; shift ;;
    --python) PY="${2:?--python needs an interpreter}"; shift 2 ;;
    --jobs) JOBS="${2:?}"; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --apt) APT=1; shift ;;
    --print-wheel) PRINT_WHEEL=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "build_dmlab: unknown argument '$1'" >&2; usage 2 ;;
  esac
done
[[ -n "$MODE" ]] || die "choose --offline DIR (pinned archives, e.g. ../shared/dmlab/sources) or --online"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY="$(command -v python3)"; fi
fi
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"   # absolute, but not resolved (keep the venv)
[[ -x "$PY" ]] || die "--python $PY is not an executable interpreter"
if [[ "$MODE" == offline ]]; then
  [[ -d "$SRC" ]] || die "--offline $SRC is not a folder; it must hold the pinned archives (see docs/DMLAB.md)"
  SRC="$(cd "$SRC" && pwd)"
fi

T0=$SECONDS
STEP_NAME="" STEP_T0=0
step() {   # step NAME: ends the previous step (printing its duration) and starts NAME
  if [[ -n "$STEP_NAME" ]]; then echo "[build_dmlab] done: ${STEP_NAME} ($((SECONDS - STEP_T0)) s)"; fi
  STEP_NAME="$1" STEP_T0=$SECONDS
  if [[ -n "$1" ]]; then echo "[build_dmlab] ${1} ..."; fi
}

# ------------------------------------------------------------------ cache key
PY_ABI="$("$PY" -c 'import sys, sysconfig; print(sys.implementation.cache_tag + "-" + (sysconfig.get_config_var("SOABI") or ""))')"
NUMPY_VER="$("$PY" -c 'import numpy; print(".".join(numpy.__version__.split(".")[:2]))' 2>/dev/null)" \
  || die "$PY has no numpy: install the project first (pip install -e .), then build against its numpy"
OS_ID="$(. /etc/os-release && echo "${ID}-${VERSION_ID:-unknown}")-$(uname -m)"
PIN_TEXT="$(printf '%s\n' "${PINS[@]}")"
KEY="$(printf '%s\n' "recipe=${RECIPE_VERSION}" "mode=${MODE}" "os=${OS_ID}" "py=${PY_ABI}" "numpy=${NUMPY_VER}" "$PIN_TEXT" \
  | sha256sum | cut -c1-16)"
CACHE="${IMPALA_MU_CACHE:-${HOME}/.cache/impala-mu}/dmlab"
OUT="${CACHE}/${KEY}"
WHEEL="${OUT}/deepmind_lab-1.0-py3-none-any.whl"
if [[ "$PRINT_WHEEL" == 1 ]]; then
  [[ -f "$WHEEL" ]] && echo "$WHEEL"
  exit 0
fi
mkdir -p "$CACHE"
exec 9>"${CACHE}/.lock"
flock 9   # one build at a time per cache (parallel CI jobs, several checkouts)
echo "[build_dmlab] mode=${MODE} python=${PY} (${PY_ABI}, numpy ${NUMPY_VER}) os=${OS_ID} key=${KEY}"

install_wheel() {
  step "install ${WHEEL##*/} with dm-env and six into ${PY}"
  "$PY" -m pip install -q --no-deps --force-reinstall "$WHEEL"
  "$PY" -m pip install -q "dm-env>=1.6" "six>=1.10"
  step "check: import deepmind_lab and step a level"
  # A level that loads from the bundled maps (no map generation, no `zip`): a fast sanity check.
  (cd / && "$PY" - <<'EOF'
import numpy as np, deepmind_lab
lab = deepmind_lab.Lab("contributed/dmlab30/rooms_watermaze", ["RGB_INTERLEAVED"], config={"width": "96", "height": "72"})
lab.reset(seed=1)
lab.step(np.zeros(7, np.intc), num_steps=4)
frame = lab.observations()["RGB_INTERLEAVED"]
assert frame.shape == (72, 96, 3) and frame.dtype == np.uint8, (frame.shape, frame.dtype)
lab.close()
print("[build_dmlab] deepmind_lab", deepmind_lab.version(), "steps rooms_watermaze: OK")
EOF
  )
  step ""
  echo "[build_dmlab] installed in $((SECONDS - T0)) s: ${WHEEL}"
}

apt_missing() {   # apt_missing LIST: apt-get installs the packages of LIST that are not installed
  local missing=()
  for pkg in $(grep -v '^#' "$1"); do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then echo "[build_dmlab] packages of ${1##*/}: all installed"; return; fi
  step "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
if [[ "$APT" == 1 ]]; then apt_missing "${RECIPE}/apt-runtime.txt"; fi

if [[ -f "$WHEEL" ]]; then
  echo "[build_dmlab] cached wheel found (same pins, mode, OS, Python ABI and numpy): no build"
  if [[ "$INSTALL" == 1 ]]; then install_wheel; fi
  exit 0
fi

# ------------------------------------------------------------------ sources
if [[ "$MODE" == offline ]]; then need=zstd; else need=curl; fi
command -v "$need" >/dev/null || die "$need not found: apt-get install $need (or pass --apt)"
if [[ "$APT" == 1 ]]; then apt_missing "${RECIPE}/apt-build.txt"; fi
WORK="${CACHE}/work"
DEPS="${WORK}/deps"
rm -rf "$WORK"
mkdir -p "$DEPS/empty" "$WORK/download"
for pin in "${PINS[@]}"; do
  IFS='|' read -r name archive sha repo commit tree <<<"$pin"
  dest="${DEPS}/${name}"
  if [[ "$MODE" == offline ]]; then
    step "verify and unpack ${archive} (sha256)"
    [[ -f "${SRC}/${archive}" ]] || die "${SRC}/${archive} missing: --offline needs all pinned archives"
    echo "${sha}  ${SRC}/${archive}" | sha256sum --check --quiet - \
      || die "${archive}: sha256 differs from the pin ${sha}; re-copy the archive"
    mkdir -p "$dest"
    tar --zstd -xf "${SRC}/${archive}" -C "$dest" --strip-components=1
    exclude=()
  else
    url="https://github.com/${repo}/archive/${commit}.tar.gz"
    step "download ${url}"
    curl -fsSL --retry 3 -o "${WORK}/download/${name}.tar.gz" "$url"
    mkdir -p "$dest"
    tar -xzf "${WORK}/download/${name}.tar.gz" -C "$dest" --strip-components=1
    exclude=()
    if [[ "$name" == lab ]]; then exclude=(--exclude "$LAB_MISSING"); fi
  fi
  step "check the content of ${name} against its pinned tree hash"
  got="$("$PY" "${RECIPE}/tree_hash.py" "$dest" "${exclude[@]}")"
  [[ "$got" == "$tree" ]] || die "${name}: tree hash ${got} differs from the pin ${tree} (${repo}@${commit})"
done
rm -rf "$WORK/download"
LAB="${DEPS}/lab"

# ------------------------------------------------------------------ build tools and headers
command -v bazel >/dev/null || die "bazel not found: apt-get install bazel-bootstrap (Debian 12: Bazel 4.2.3), or pass --apt"
for cmd in zip gcc; do
  command -v "$cmd" >/dev/null || die "$cmd not found: apt-get install the packages in ${RECIPE}/apt-build.txt (or pass --apt)"
done
MULTIARCH="$(gcc -print-multiarch)"
for header in /usr/include/libxml2/libxml/xmlversion.h /usr/include/lua5.1/lua.h /usr/include/eigen3/Eigen/Core \
              /usr/include/glib-2.0/glib.h /usr/include/SDL2/SDL.h /usr/include/GL/osmesa.h /usr/include/EGL/egl.h \
              /usr/include/jpeglib.h /usr/include/png.h /usr/include/zlib.h; do
  [[ -e "$header" ]] || die "$header missing: apt-get install the packages in ${RECIPE}/apt-build.txt (or pass --apt)"
done

step "write impala-mu's WORKSPACE, libxml2 headers without ICU and the pip package's __init__"
sed -e "s|@DEPS@|${DEPS}|g" -e "s|@MULTIARCH@|${MULTIARCH}|g" "${RECIPE}/WORKSPACE.in" >"${LAB}/WORKSPACE"
mkdir -p "${DEPS}/libxml/include"
cp -r /usr/include/libxml2/libxml "${DEPS}/libxml/include/"
sed -i 's|^#define LIBXML_ICU_ENABLED$|/* LIBXML_ICU_ENABLED off: impala-mu build recipe */|' "${DEPS}/libxml/include/libxml/xmlversion.h"
! grep -q '^#define LIBXML_ICU_ENABLED' "${DEPS}/libxml/include/libxml/xmlversion.h" || die "could not switch off LIBXML_ICU_ENABLED"
cp "${RECIPE}/pip_init.py" "${LAB}/python/pip_package/__init__.py"

# ------------------------------------------------------------------ build
step "bazel build //:deepmind_lab.so and the pip package (${JOBS} jobs)"
BAZEL_ROOT="${CACHE}/bazel"   # kept: a rebuild reuses its action cache
# The target interpreter first on PATH: python_system.bzl asks `python3` for its headers and numpy's.
PY_DIR="$(dirname "$PY")"
[[ -x "${PY_DIR}/python3" ]] || die "no python3 beside ${PY}: python_system.bzl calls python3"
cleanup() { (cd "$LAB" 2>/dev/null && bazel --output_user_root="$BAZEL_ROOT" shutdown >/dev/null 2>&1) || true; }
trap cleanup EXIT
(
  cd "$LAB"
  export PATH="${PY_DIR}:${PATH}"
  bazel --output_user_root="$BAZEL_ROOT" --nohome_rc --max_idle_secs=30 build \
    -c opt --define graphics=osmesa_or_egl --cxxopt=-std=c++17 --host_cxxopt=-std=c++17 \
    --spawn_strategy=local --jobs="$JOBS" --color=no --curses=no --noshow_progress \
    --override_repository=platforms="${DEPS}/platforms" \
    //:deepmind_lab.so //python/pip_package:build_pip_package
)
step "build the wheel"
mkdir -p "$OUT.tmp"
(cd "$LAB" && PYTHON_BIN_PATH="$PY" ./bazel-bin/python/pip_package/build_pip_package "$OUT.tmp" >/dev/null)
[[ -f "$OUT.tmp/deepmind_lab-1.0-py3-none-any.whl" ]] || die "build_pip_package wrote no wheel in $OUT.tmp"
printf '%s\n' "recipe=${RECIPE_VERSION}" "mode=${MODE}" "os=${OS_ID}" "py=${PY_ABI}" "numpy=${NUMPY_VER}" "$PIN_TEXT" >"$OUT.tmp/KEY.txt"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"   # the cache entry appears complete or not at all
cleanup
trap - EXIT
rm -rf "$WORK"
echo "[build_dmlab] built ${WHEEL} ($(du -h "$WHEEL" | cut -f1)) in $((SECONDS - T0)) s"
if [[ "$INSTALL" == 1 ]]; then install_wheel; else step ""; fi
