#!/usr/bin/env bash
# Builds a real, naturally long-tailed image folder from the emoji-datasource npm packages:
#   OUT_DIR/train/<category>/<set>-<image>.png   apple, google and facebook drawings (64x64 RGBA PNG)
#   OUT_DIR/test/<category>/<image>.png          twitter drawings: a drawing-style shift from train to test
# Class = emoji.json "category" without "Component"; skin-tone variations are separate images, which is what
# makes "People & Body" the head. Folder names are slugs ("people-body"), so sorted order is the class index.
# Usage: bench/data/emoji-lt.sh OUT_DIR   (needs npm, tar, jq, python3; writes OUT_DIR.tmp, then renames it)
# EMOJI_LT_BACKGROUND=white (or black) composites the RGBA drawings onto that colour and writes RGB PNGs (needs
# PIL). Unset, files are copied byte for byte; a loader that drops alpha then sees the hidden colour of
# transparent pixels, which differs per style (a background cue the model could learn).
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
out=${1%/}
version=16.0.0
# Pinned so a republished or different tarball is caught, not silently used (values from `npm pack --json`).
declare -A integrity=(
    [apple]=sha512-dVYjsK0FnCry9F+PBtnivhG2K0xdwlmqYaSgiUtztUdAGPYiHYhZcVKvNBqC791g2qyEcFNTBO6utg4eQ3uLTw==
    [google]=sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==
    [facebook]=sha512-b9ZxJdB7nMWGckH1vyCjPSosaa6MJYuojPPFiQ0LmDIZS8vlG454XKcmTFKrXIMAA72O4MRJMYFhvWI8pjyciQ==
    [twitter]=sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==
)
sets=(apple google facebook twitter)
background=${EMOJI_LT_BACKGROUND:-}
if [[ -n $background && $background != white && $background != black ]]; then
    echo "error: EMOJI_LT_BACKGROUND is '$background': expected white, black or unset" >&2
    exit 2
fi
py=/usr/bin/python3
[[ -x $py ]] || py=python3
for tool in npm tar jq "$py"; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out.tmp"
mkdir -p "$out.tmp"

for s in "${sets[@]}"; do
    pkg=emoji-datasource-$s@$version
    echo "npm pack $pkg" >&2
    npm pack "$pkg" --json --pack-destination "$work" >"$work/$s.json"
    got=$(jq -r '.[0].integrity' "$work/$s.json")
    if [[ $got != "${integrity[$s]}" ]]; then
        echo "error: $pkg has integrity $got, expected ${integrity[$s]}" >&2
        exit 1
    fi
    mkdir -p "$work/$s"
    tar -xzf "$work/$(jq -r '.[0].filename' "$work/$s.json")" -C "$work/$s" --strip-components=1 \
        package/emoji.json package/LICENSE package/README.md package/package.json "package/img/$s/64"
done

# emoji.json is the same file in every package; the twitter copy decides classes and images.
"$py" - "$work" "$out.tmp" "$background" "${sets[@]}" <<'EOF'
import json, os, re, shutil, sys

work, out, background, sets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
if background:
    from PIL import Image
    fill = (255, 255, 255, 255) if background == "white" else (0, 0, 0, 255)

def copy(src, dst):
    if not background:
        shutil.copyfile(src, dst)
        return
    im = Image.open(src).convert("RGBA")
    flat = Image.new("RGBA", im.size, fill)
    flat.alpha_composite(im)
    flat.convert("RGB").save(dst)

train_sets, test_set = [s for s in sets if s != "twitter"], "twitter"
ref = open(os.path.join(work, test_set, "emoji.json"), "rb").read()
for s in sets:
    if open(os.path.join(work, s, "emoji.json"), "rb").read() != ref:
        sys.exit(f"error: emoji.json of emoji-datasource-{s} differs from the {test_set} one")
entries = json.loads(ref)

def slug(category):
    return re.sub(r"[^a-z0-9]+", "-", category.lower().replace("&", " ")).strip("-")

counts = {}  # slug -> [train, test]
for e in entries:
    if e["category"] == "Component":
        continue
    cls = slug(e["category"])
    counts.setdefault(cls, [0, 0])
    for item in [e] + list((e.get("skin_variations") or {}).values()):
        image = item["image"]
        for s in sets:
            if not item.get("has_img_" + s):
                continue  # the package has no drawing of this emoji in this style
            src = os.path.join(work, s, "img", s, "64", image)
            if not os.path.isfile(src):
                sys.exit(f"error: emoji.json says has_img_{s} for {image} but {src} is missing")
            split, name = ("test", image) if s == test_set else ("train", f"{s}-{image}")
            dst_dir = os.path.join(out, split, cls)
            os.makedirs(dst_dir, exist_ok=True)
            dst = os.path.join(dst_dir, name)
            if os.path.exists(dst):
                sys.exit(f"error: two emoji.json entries give {dst}")
            copy(src, dst)
            counts[cls][0 if split == "train" else 1] += 1

with open(os.path.join(out, "COUNTS.tsv"), "w") as f:
    f.write("index\tclass\ttrain\ttest\n")
    for i, cls in enumerate(sorted(counts)):
        f.write(f"{i}\t{cls}\t{counts[cls][0]}\t{counts[cls][1]}\n")
    tr = [c[0] for c in counts.values()]
    te = [c[1] for c in counts.values()]
    f.write(f"\ttotal\t{sum(tr)}\t{sum(te)}\n")
    f.write(f"\timbalance(max/min)\t{max(tr) / min(tr):.2f}\t{max(te) / min(te):.2f}\n")
EOF

{
    echo "Built by bench/data/emoji-lt.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "train: apple, google, facebook 64px PNGs; test: twitter 64px PNGs; class = emoji.json category"
    echo "background: ${background:-none (RGBA files copied as shipped)}"
    echo "package	version	integrity	license(package.json)"
    for s in "${sets[@]}"; do
        jq -r --arg l "$(jq -r .license "$work/$s/package.json")" \
            '.[0] | "\(.name)\t\(.version)\t\(.integrity)\t\($l)"' "$work/$s.json"
    done
    echo
    echo "Image licenses as the packages' README states them (the MIT license covers the data, not the drawings):"
    grep -E '^\* (Apple|Android|Twitter|Facebook)[^ ]* images' "$work/twitter/README.md"
} >"$out.tmp/SOURCE.txt"
cp "$work/twitter/LICENSE" "$out.tmp/LICENSE-emoji-data.txt"

rm -rf "$out"
mv "$out.tmp" "$out"
column -t -s $'\t' "$out/COUNTS.tsv"
echo "wrote $out" >&2
