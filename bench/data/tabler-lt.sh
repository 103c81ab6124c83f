#!/usr/bin/env bash
# Builds a real, naturally long-tailed image folder from the npm package @tabler/icons (MIT, SVG icons):
#   OUT_DIR/train/<category>/<icon>.png   the outline icons, rendered to 64x64 RGB PNG on white
#   OUT_DIR/test/<category>/<icon>.png    only with TABLER_LT_TEST=filled: the filled variants of the same icons
# Class = icons.json "category" of the icon (every icon has exactly one; 41 of them). Folder names are slugs
# ("version-control"), so sorted order is the class index. By default there is no test/ folder: the filled variant
# covers only 1,056 of the 5,525 icons and 33 of the 41 classes (7 of the 8 smallest classes have none), so it is a
# style-shift check, not a long-tail test set; a stratified split of train/ is the long-tail test.
# Usage: bench/data/tabler-lt.sh OUT_DIR   (needs npm, tar, jq and rsvg-convert from Debian's librsvg2-bin, which it
# installs with apt-get when missing; writes OUT_DIR.tmp, then renames it)
# TABLER_LT_SIZE=96 renders at 96x96 instead of 64x64; TABLER_LT_JOBS=N renders with N processes (default: nproc).
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
out=${1%/}
pkg=@tabler/icons@3.54.0
# Pinned so a republished or different tarball is caught, not silently used (value from `npm pack --json`).
integrity=sha512-Qak+rt5Q89k2fa5yQOE8IulUDoUJneuzEHMJ3NOQf5mvSnmlCY5xARiCi60ba4Doxqv+KbYOhzWtCauehEitBA==
size=${TABLER_LT_SIZE:-64}
test_style=${TABLER_LT_TEST:-}
jobs=${TABLER_LT_JOBS:-$(nproc)}
if [[ ! $size =~ ^[1-9][0-9]{0,3}$ ]]; then
    echo "error: TABLER_LT_SIZE is '$size': expected a pixel count such as 64 or 96" >&2
    exit 2
fi
if [[ -n $test_style && $test_style != filled ]]; then
    echo "error: TABLER_LT_TEST is '$test_style': expected filled or unset" >&2
    exit 2
fi
if [[ ! $jobs =~ ^[1-9][0-9]*$ ]]; then
    echo "error: TABLER_LT_JOBS is '$jobs': expected a positive whole number" >&2
    exit 2
fi
for tool in npm tar jq; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done
if ! command -v rsvg-convert >/dev/null; then
    echo "rsvg-convert not found: apt-get install -y librsvg2-bin" >&2
    apt-get install -y -qq librsvg2-bin >&2 || {
        echo "error: could not install librsvg2-bin (rsvg-convert); install it and rerun" >&2
        exit 1
    }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out.tmp"
mkdir -p "$out.tmp"

echo "npm pack $pkg" >&2
npm pack "$pkg" --json --pack-destination "$work" >"$work/pack.json"
got=$(jq -r '.[0].integrity' "$work/pack.json")
if [[ $got != "$integrity" ]]; then
    echo "error: $pkg has integrity $got, expected $integrity" >&2
    exit 1
fi
mkdir -p "$work/pkg"
tar -xzf "$work/$(jq -r '.[0].filename' "$work/pack.json")" -C "$work/pkg" --strip-components=1 \
    package/icons.json package/LICENSE package/package.json package/icons/outline package/icons/filled
meta=$work/pkg/icons.json

# One line per image to render: split, class slug, icon name, style. The slug keeps letters and digits only, so
# "E-commerce" and "Version control" become "e-commerce" and "version-control".
styles='["outline"]'
[[ -n $test_style ]] && styles='["outline","filled"]'
jq -r --argjson styles "$styles" '
    to_entries[] | .key as $name | .value as $v
    | if ($v.category // "") == "" then error("icons.json: icon \($name) has no category") else . end
    | ($v.category | ascii_downcase | gsub("[^a-z0-9]+"; "-") | ltrimstr("-") | rtrimstr("-")) as $cls
    | $styles[] | select($v.styles[.] != null)
    | [(if . == "outline" then "train" else "test" end), $cls, $name, .] | @tsv' "$meta" >"$work/list.tsv"

declare -A made=()
while IFS=$'\t' read -r split cls name style; do
    src=$work/pkg/icons/$style/$name.svg
    [[ -f $src ]] || { echo "error: icons.json lists $style $name but $src is missing" >&2; exit 1; }
    [[ -n ${made[$split/$cls]:-} ]] || { mkdir -p "$out.tmp/$split/$cls"; made[$split/$cls]=1; }
    printf '%s\0%s\0' "$src" "$out.tmp/$split/$cls/$name.png"
done <"$work/list.tsv" >"$work/jobs.bin"
if [[ $(cut -f1,3 "$work/list.tsv" | sort | uniq -d | wc -l) -ne 0 ]]; then
    echo "error: icons.json gives one icon name twice in one split" >&2
    exit 1
fi

# rsvg-convert paints the stroke colour (currentColor) black; -b white flattens onto white, so the PNGs are RGB with
# no alpha for a loader to drop.
echo "rendering $(wc -l <"$work/list.tsv") SVGs at ${size}x$size with $jobs process(es)" >&2
# The size is sh's $0; each source/destination pair arrives as $1 and $2.
if ! xargs -0 -n 2 -P "$jobs" sh -c 'rsvg-convert -w "$0" -h "$0" -b white -f png "$1" -o "$2"' "$size" \
    <"$work/jobs.bin" 2>"$work/rsvg.err"; then
    echo "error: rsvg-convert failed:" >&2
    cat "$work/rsvg.err" >&2
    exit 1
fi
while IFS=$'\t' read -r split cls name style; do
    png=$out.tmp/$split/$cls/$name.png
    if [[ ! -s $png ]]; then
        echo "error: rsvg-convert did not write $png:" >&2
        cat "$work/rsvg.err" >&2
        exit 1
    fi
done <"$work/list.tsv"

awk -F'\t' '
    { n[$2, $1]++; cls[$2] = 1; if ($1 == "test") has_test = 1 }
    END {
        k = 0
        for (c in cls) names[++k] = c
        # insertion sort: awk has no portable sort, and 41 names are few
        for (i = 2; i <= k; i++) { v = names[i]; for (j = i - 1; j >= 1 && names[j] > v; j--) names[j + 1] = names[j]
            names[j + 1] = v }
        print "index\tclass\ttrain" (has_test ? "\ttest" : "")
        max = 0; min = -1; tt = 0; tr = 0
        for (i = 1; i <= k; i++) {
            c = names[i]; a = n[c, "train"] + 0; b = n[c, "test"] + 0; tr += a; tt += b
            if (a > max) max = a
            if (min < 0 || a < min) min = a
            print (i - 1) "\t" c "\t" a (has_test ? "\t" b : "")
        }
        print "\ttotal\t" tr (has_test ? "\t" tt : "")
        printf "\timbalance(max/min)\t%.2f\n", max / min
    }' "$work/list.tsv" >"$out.tmp/COUNTS.tsv"

{
    echo "Built by bench/data/tabler-lt.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "train: outline icons; test: ${test_style:-none (make a stratified split of train)}"
    echo "class: icons.json category, slugged"
    echo "rendering: $(rsvg-convert --version) at ${size}x$size, black strokes on a white background, RGB PNG"
    if command -v dpkg-query >/dev/null && dpkg-query -W librsvg2-bin >/dev/null 2>&1; then
        echo "renderer package: $(dpkg-query -W -f '${Package} ${Version}' librsvg2-bin)"
    fi
    echo "package	version	integrity	license(package.json)"
    jq -r --arg l "$(jq -r .license "$work/pkg/package.json")" \
        '.[0] | "\(.name)\t\(.version)\t\(.integrity)\t\($l)"' "$work/pack.json"
} >"$out.tmp/SOURCE.txt"
cp "$work/pkg/LICENSE" "$out.tmp/LICENSE-tabler-icons.txt"

rm -rf "$out"
mv "$out.tmp" "$out"
column -t -s $'\t' "$out/COUNTS.tsv"
echo "wrote $out" >&2
