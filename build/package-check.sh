#!/usr/bin/env bash
# The packages as a user meets them: dotnet pack the H2T.Core library and the h2t tool into a local folder, install
# the tool from it and train a tiny model, then build a scratch project (outside this repository, so none of its
# build files apply) that restores H2T.Core from that folder and classifies an image with the tool's checkpoint
# through the library, the native fix coming from the package. Run by .ci/run; exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sample="$root/tests/H2T.Tests/Data/Fixtures/cifar10-jpg-sample"
version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$root/Directory.Build.props")"
echo "== pack H2T.Core and H2T.Cli $version -> $work/packages"
for p in H2T.Core H2T.Cli; do
  dotnet pack "$root/src/$p/$p.csproj" -c Release -o "$work/packages" --nologo -v quiet "-clp:ErrorsOnly;NoSummary"
done
# The listing is read whole first: `unzip -l | grep -q` under pipefail fails at random, when grep's early exit
# sends SIGPIPE to an unzip still writing.
for p in H2T.Core H2T.Cli; do
  listing="$(unzip -l "$work/packages/$p.$version.nupkg")"
  for f in README.md LICENSE; do
    grep -q " $f\$" <<<"$listing" || { echo "package-check: $p.$version.nupkg lacks $f"; exit 1; }
  done
done
# A package of this version cached by an earlier run would be taken instead of the one just packed.
nuget_cache="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
rm -rf "$nuget_cache/h2t.core/$version" "$nuget_cache/h2t.cli/$version"
echo "== dotnet tool install H2T.Cli from the folder; h2t stage1 on the committed CIFAR-10 sample"
dotnet tool install H2T.Cli --version "$version" --tool-path "$work/tool" --add-source "$work/packages" >/dev/null
"$work/tool/h2t" info | grep -E "native fix"
"$work/tool/h2t" stage1 --dataset cifar10-jpg --data "$sample" --imb-factor 2 --backbone resnet8 --epochs 1 --out "$work/run" >/dev/null
echo "== the installed tool finds the NuGet ImageNet ResNet-18 it ships (--pretrained mlnet:resnet18)"
"$work/tool/h2t" stage1 --dataset cifar10-jpg --data "$sample" --imb-factor 2 --backbone resnet18_cntk --pretrained mlnet:resnet18 \
  --trainable layer4 --epochs 1 --batch-size 32 --out "$work/run-pretrained" >/dev/null
grep -q "pretrained backbone: 110 tensor(s) loaded" "$work/run-pretrained/log.txt" \
  || { echo "package-check: the tool did not load mlnet:resnet18"; cat "$work/run-pretrained/log.txt"; exit 1; }
"$work/tool/h2t" predict --checkpoint "$work/run/last.ckpt" "$sample/test/cat/0000.jpg" --top-k 2

echo "== a scratch project restores H2T.Core $version from the folder and predicts"
mkdir -p "$work/scratch"
cat > "$work/scratch/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="local" value="$work/packages" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
  </packageSources>
</configuration>
XML
cat > "$work/scratch/Scratch.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>enable</ImplicitUsings>
    <RuntimeIdentifier>linux-x64</RuntimeIdentifier>
    <SelfContained>false</SelfContained>
  </PropertyGroup>
  <ItemGroup>
    <PackageReference Include="H2T.Core" Version="$version" />
  </ItemGroup>
</Project>
XML
cat > "$work/scratch/Program.cs" <<'CS'
using H2T.Inference;
using H2T.Runtime;
using var model = ImageClassifier.Load(args[0]);
var p = model.Predict(args[1], topK: 2);
Console.WriteLine($"native fix: {TorchRuntime.NativeFix.State}");
Console.WriteLine($"{model.Card}");
Console.WriteLine($"prediction: {p.Best.Name} {p.Best.Probability:F3} ({model.Engine})");
CS
(cd "$work/scratch" && dotnet run -c Release -- "$work/run/last.ckpt" "$sample/test/cat/0000.jpg" | tee "$work/scratch.txt")
grep -q "^prediction: " "$work/scratch.txt" || { echo "package-check: the scratch project printed no prediction"; exit 1; }
grep -Eq "^native fix: (applied|not needed)" "$work/scratch.txt" || { echo "package-check: the package's native fix did not run at build"; exit 1; }
echo "== the same scratch program on the tool's ONNX export (ONNX Runtime through the package)"
"$work/tool/h2t" export "$work/run/last.ckpt" --format onnx --out "$work/model.onnx" >/dev/null
(cd "$work/scratch" && dotnet run -c Release --no-build -- "$work/model.onnx" "$sample/test/cat/0000.jpg" | tee "$work/scratch-onnx.txt")
grep -q "ONNX Runtime" "$work/scratch-onnx.txt" || { echo "package-check: the scratch project did not run the ONNX model"; exit 1; }
echo "package-check: ok"
