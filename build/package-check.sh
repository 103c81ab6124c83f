#!/usr/bin/env bash
# The packages as a user meets them. dotnet pack every library package and the h2t tool into a local folder and
# check each package's dependency list against its concern. Install the tool from the folder and train a tiny model.
# Then build two scratch projects outside this repository (so none of its build files apply):
#   - one references only H2T.Core: it trains, predicts on TorchSharp, and decides the 1x1-convolution path by its
#     own probe (the native fix coming from the package);
#   - one adds H2T.Onnx: it runs the tool's ONNX export on ONNX Runtime.
# Run by .ci/run; exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sample="$root/tests/H2T.Tests/Data/Fixtures/cifar10-jpg-sample"
version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$root/Directory.Build.props")"
packages=(H2T.Core H2T.Onnx H2T.Reporting H2T.Serving H2T.Grid H2T.Fit H2T.Cli)
echo "== pack ${packages[*]} $version -> $work/packages"
for p in "${packages[@]}"; do
  dotnet pack "$root/src/$p/$p.csproj" -c Release -o "$work/packages" --nologo -v quiet "-clp:ErrorsOnly;NoSummary"
done
# What each package may depend on: its concern, nothing else. The nuspec's <dependency id=...> list, sorted.
declare -A expected=(
  [H2T.Core]="SkiaSharp SkiaSharp.NativeAssets.Linux.NoDependencies TorchSharp-cpu TorchSharp.PyBridge YamlDotNet"
  [H2T.Onnx]="Google.Protobuf H2T.Core Microsoft.ML.OnnxRuntime OnnxSharp"
  [H2T.Reporting]="H2T.Core ScottPlot"
  [H2T.Serving]="H2T.Core H2T.Reporting Microsoft.AspNetCore.OpenApi Microsoft.OpenApi prometheus-net.AspNetCore"
  [H2T.Grid]="H2T.Core H2T.Reporting"
  [H2T.Fit]="H2T.Core H2T.Onnx H2T.Reporting"
)
# The listing is read whole first: `unzip -l | grep -q` under pipefail fails at random, when grep's early exit
# sends SIGPIPE to an unzip still writing.
for p in "${packages[@]}"; do
  nupkg="$work/packages/$p.$version.nupkg"
  listing="$(unzip -l "$nupkg")"
  for f in README.md LICENSE; do
    grep -q " $f\$" <<<"$listing" || { echo "package-check: $p.$version.nupkg lacks $f"; exit 1; }
  done
  [ "$p" = H2T.Cli ] && continue
  grep -q " lib/net10.0/$p.xml\$" <<<"$listing" || { echo "package-check: $p.$version.nupkg lacks its XML documentation"; exit 1; }
  nuspec="$(unzip -p "$nupkg" "$p.nuspec")"
  deps="$({ grep -o '<dependency id="[^"]*"' <<<"$nuspec" || true; } | sed 's/.*id="//; s/"$//' | sort -u | tr '\n' ' ' | sed 's/ $//')"
  if [ "$deps" != "${expected[$p]}" ]; then
    echo "package-check: $p depends on [$deps], expected [${expected[$p]}]"; exit 1
  fi
  frameworks="$({ grep -o '<frameworkReference name="[^"]*"' <<<"$nuspec" || true; } | sed 's/.*name="//; s/"$//' | sort -u | tr '\n' ' ')"
  case "$p" in
    H2T.Serving) [ "$frameworks" = "Microsoft.AspNetCore.App " ] || { echo "package-check: $p frameworks [$frameworks]"; exit 1; } ;;
    *) [ -z "$frameworks" ] || { echo "package-check: $p references the frameworks [$frameworks]"; exit 1; } ;;
  esac
  grep -q '<repository type="git"' <<<"$nuspec" || { echo "package-check: $p names no source repository (SourceLink)"; exit 1; }
  echo "$p: depends on $deps${frameworks:+; framework $frameworks}"
done
# A package of this version cached by an earlier run would be taken instead of the one just packed.
nuget_cache="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
for p in "${packages[@]}"; do rm -rf "$nuget_cache/${p,,}/$version"; done
echo "== dotnet tool install H2T.Cli from the folder; h2t stage1 on the committed CIFAR-10 sample"
dotnet tool install H2T.Cli --version "$version" --tool-path "$work/tool" --add-source "$work/packages" >/dev/null
"$work/tool/h2t" info | grep -E "native fix"
"$work/tool/h2t" stage1 --dataset cifar10-jpg --data "$sample" --imb-factor 2 --backbone resnet8 --epochs 1 --out "$work/run" >/dev/null
echo "== the installed tool finds the NuGet ImageNet ResNet-18 it ships (--pretrained mlnet:resnet18)"
"$work/tool/h2t" stage1 --dataset cifar10-jpg --data "$sample" --imb-factor 2 --backbone resnet18_cntk \
  --pretrained mlnet:resnet18 --trainable layer4 --epochs 1 --batch-size 32 --out "$work/run-pretrained" >/dev/null
grep -q "pretrained backbone: 110 tensor(s) loaded" "$work/run-pretrained/log.txt" \
  || { echo "package-check: the tool did not load mlnet:resnet18"; cat "$work/run-pretrained/log.txt"; exit 1; }
"$work/tool/h2t" predict --checkpoint "$work/run/last.ckpt" "$sample/test/cat/0000.jpg" --top-k 2
"$work/tool/h2t" export "$work/run/last.ckpt" --format onnx --out "$work/model.onnx" >/dev/null

# scratch NAME PACKAGE...: a console project outside the repository restoring PACKAGEs from the folder.
scratch() {
  local dir="$work/$1"; shift
  mkdir -p "$dir"
  cat > "$dir/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="local" value="$work/packages" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
  </packageSources>
</configuration>
XML
  {
    echo '<Project Sdk="Microsoft.NET.Sdk">'
    echo '  <PropertyGroup>'
    echo '    <OutputType>Exe</OutputType>'
    echo '    <TargetFramework>net10.0</TargetFramework>'
    echo '    <Nullable>enable</Nullable>'
    echo '    <ImplicitUsings>enable</ImplicitUsings>'
    echo '    <RuntimeIdentifier>linux-x64</RuntimeIdentifier>'
    echo '    <SelfContained>false</SelfContained>'
    echo '  </PropertyGroup>'
    echo '  <ItemGroup>'
    for p in "$@"; do echo "    <PackageReference Include=\"$p\" Version=\"$version\" />"; done
    echo '  </ItemGroup>'
    echo '</Project>'
  } > "$dir/Scratch.csproj"
}

echo "== a scratch project with only H2T.Core $version: trains, predicts, probes its own 1x1 path"
scratch core H2T.Core
cat > "$work/core/Program.cs" <<'CS'
using H2T.Inference;
using H2T.Models;
using H2T.Runs;
using H2T.Runtime;
using H2T.Settings;
using H2T.Training;
TorchRuntime.Initialize();
var data = new DataConfig(Dataset: "cifar10-jpg", DataPath: args[0], ImbFactor: 2);
var config = new StageOneConfig { Data = data, Backbone = "resnet8", Epochs = 1, Optim = new OptimConfig(Lr: 0.05, BatchSize: 50) };
var run = new RunFolder(args[1]);
var metrics = StageOneTrainer.Run(config, run, TorchRuntime.ResolveDevice("cpu"), new SilentObserver());
Console.WriteLine($"trained: top-1 {metrics.Final?.Top1:F1}% -> {run.LastCheckpoint}");
using var model = ImageClassifier.Load(run.LastCheckpoint);
var p = model.Predict(args[2], topK: 2);
Console.WriteLine($"native fix: {TorchRuntime.NativeFix.State}");
Console.WriteLine($"1x1 convolutions: {Pointwise.Choice.Describe()}");
Console.WriteLine($"prediction: {p.Best.Name} {p.Best.Probability:F3} ({model.Engine})");
CS
# A fresh cache folder for both, so each decides by its own probe.
export H2T_CALIBRATION="$work/cache-core/precision-calibration.json"
(cd "$work/core" && dotnet run -c Release -- "$sample" "$work/core-run" "$sample/test/cat/0000.jpg" | tee "$work/core.txt")
grep -q "^trained: top-1 " "$work/core.txt" || { echo "package-check: the core-only project did not train"; exit 1; }
grep -q "^prediction: .*(TorchSharp" "$work/core.txt" || { echo "package-check: the core-only project did not predict"; exit 1; }
grep -Eq "^native fix: (applied|not needed)" "$work/core.txt" \
  || { echo "package-check: the package's native fix did not run at build"; exit 1; }
grep -Eq "^1x1 convolutions: .*(killed the probe|the probe ran)" "$work/core.txt" \
  || { echo "package-check: the core-only project did not probe its 1x1 path"; exit 1; }
export H2T_CALIBRATION="$work/cache-tool/precision-calibration.json"
tool_choice="$("$work/tool/h2t" info | grep -o "1x1 convolutions *[A-Za-z]*" | awk '{print $3}')"
core_choice="$(grep "^1x1 convolutions: " "$work/core.txt" | awk '{print $3}')"
[ "$tool_choice" = "$core_choice" ] \
  || { echo "package-check: the core-only project chose '$core_choice' for 1x1 convolutions, the tool '$tool_choice'"; exit 1; }
unset H2T_CALIBRATION

echo "== a scratch project with H2T.Onnx: the tool's ONNX export on ONNX Runtime"
scratch onnx H2T.Onnx
cat > "$work/onnx/Program.cs" <<'CS'
using H2T.Inference;
using var model = ImageClassifier.Load(args[0]);
var p = model.Predict(args[1], topK: 2);
Console.WriteLine($"{model.Card}");
Console.WriteLine($"prediction: {p.Best.Name} {p.Best.Probability:F3} ({model.Engine})");
CS
(cd "$work/onnx" && dotnet run -c Release -- "$work/model.onnx" "$sample/test/cat/0000.jpg" | tee "$work/onnx.txt")
grep -q "^prediction: .*ONNX Runtime" "$work/onnx.txt" || { echo "package-check: the scratch project did not run the ONNX model"; exit 1; }
echo "package-check: ok"
