#!/usr/bin/env bash
# Check that the nova 21.x patch series (patches/nova/21.x: the XenAPI SR
# UUID fix) applies to the nova 21.2.4 sdist through the package's own
# patch command, and leave a patched tree for the Nova 21 XenAPI tests:
#
#   export NMG_NOVA21_TREE=$(tools/check-nova21-series.sh)
#
# Steps: download nova-21.2.4.tar.gz from PyPI into a cache (once; its
# sha256 is checked), extract it fresh, then `nova-migration-guard patches
# check`, `apply`, `status`, a `revert` that must give back the sdist's
# bytes, and `apply` again. Progress goes to stderr; stdout is only the
# patched tree's path. Exits non-zero, saying why, on any failure.
#
# Environment: NMG_NOVA21_CACHE (default .cache/nova21), NMG_PYTHON (a
# Python with pip for the download; default: the tox unit env, the tox
# virtualenv or python3, the first that has pip).
set -uo pipefail
cd "$(dirname "$0")/.."
TOP=$(pwd)
VERSION=21.2.4
SDIST=nova-$VERSION.tar.gz
SHA256=d3b0c273011908c84f738984803751363f46c0ae89d9a1d1b4deb86cd0ffb0d2
CACHE=${NMG_NOVA21_CACHE:-$TOP/.cache/nova21}

say() { printf '=== %s\n' "$*" >&2; }
die() { printf 'check-nova21-series: FAILED: %s\n' "$*" >&2; exit 1; }

pick_python() {
    local py
    for py in ${NMG_PYTHON:-} "$TOP/.tox/unit/bin/python" \
              "$TOP/.venv-tox/bin/python" python3; do
        if command -v "$py" >/dev/null 2>&1 &&
                "$py" -m pip --version >/dev/null 2>&1; then
            echo "$py"; return 0
        fi
    done
    return 1
}

PY=$(pick_python) || die "no Python with pip found (set NMG_PYTHON)"
command -v patch >/dev/null || die "GNU patch is missing (apt-get install patch)"
mkdir -p "$CACHE" || die "cannot create the cache $CACHE"

# --- the sdist, downloaded once
if [ -f "$CACHE/$SDIST" ] &&
        ! echo "$SHA256  $CACHE/$SDIST" | sha256sum -c --quiet - >/dev/null 2>&1; then
    say "cached $SDIST does not match its sha256: downloading it again"
    rm -f "$CACHE/$SDIST"
fi
if [ ! -f "$CACHE/$SDIST" ]; then
    say "downloading $SDIST from PyPI into $CACHE ($PY -m pip download)"
    "$PY" -m pip download -q --no-deps --no-binary :all: "nova==$VERSION" \
        -d "$CACHE" >&2 || die "pip download nova==$VERSION failed"
fi
[ -f "$CACHE/$SDIST" ] || die "pip download left no $CACHE/$SDIST"
echo "$SHA256  $CACHE/$SDIST" | sha256sum -c --quiet - >&2 2>&1 ||
    die "$SDIST does not match sha256 $SHA256"

# --- a fresh tree, and a pristine one to compare a revert with
WORK=$CACHE/work
rm -rf "$WORK" && mkdir -p "$WORK/patched" "$WORK/pristine" ||
    die "cannot recreate $WORK"
for d in patched pristine; do
    tar -xzf "$CACHE/$SDIST" -C "$WORK/$d" --no-same-owner ||
        die "cannot extract $SDIST"
done
TREE=$WORK/patched/nova-$VERSION
say "extracted $SDIST into $TREE"

patches() {  # action: the package's own command, on the fresh tree
    say "nova-migration-guard patches $1"
    PYTHONPATH="$TOP${PYTHONPATH:+:$PYTHONPATH}" "$PY" \
        -m nova_migration_guard.cmd.main patches "$1" \
        --nova-dir "$TREE" --nova-version "$VERSION" >&2
}

patches check || die "the 21.x series does not apply to nova $VERSION"
patches apply || die "patches apply failed on nova $VERSION"
patches status || die "the series is not applied after apply"
patches revert || die "patches revert failed"
diff -r -q "$WORK/pristine/nova-$VERSION" "$TREE" >&2 ||
    die "revert did not give back the sdist's files"
say "revert gave back the sdist's files byte for byte"
patches apply || die "patches apply (again) failed"
grep -q "volume_sr_uuids" "$TREE/nova/objects/migrate_data.py" ||
    die "$TREE does not carry the series after apply"
rm -rf "$WORK/pristine"

say "nova $VERSION with the 21.x series applied: $TREE"
echo "$TREE"
