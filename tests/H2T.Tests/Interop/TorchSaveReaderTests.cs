using System.Collections;
using System.Text.Json;
using H2T.Interop;
using H2T.Settings;
using static TorchSharp.torch;
using H2T.Tests.Data;

namespace H2T.Tests.Interop;

/// <summary>The torch.save reader on real PyTorch 1.13 files: every dtype, views, numpy objects, builtins,
/// refusals.</summary>
public sealed class TorchSaveReaderTests
{
    [Fact]
    public void EveryDtypeViewNumpyObjectAndBuiltinComesOutAsPyTorchSavedIt()
    {
        var sink = TorchSaveReader.ReadDict(PyTorchFixtures.Committed("kitchen_sink.pth"));
        Assert.IsType<PyOrderedDict>(sink);
        using var expect = JsonDocument.Parse(File.ReadAllText(PyTorchFixtures.Committed("kitchen_sink.json")));
        foreach (var entry in expect.RootElement.EnumerateObject())
        {
            var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64()).ToArray();
            var values = entry.Value.GetProperty("values").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            if (entry.Name == "numpy_array")
            {
                var a = Assert.IsType<NumpyArray>(sink[entry.Name]);
                Assert.Equal(shape, a.Shape);
                Assert.Equal(values, a.ToDoubles());
                continue;
            }
            var t = Assert.IsAssignableFrom<Tensor>(sink[entry.Name]);
            Assert.Equal(entry.Value.GetProperty("dtype").GetString(), DtypeName(t.dtype));
            Assert.Equal(shape, t.shape);
            using var flat = t.to_type(ScalarType.Float64).flatten();
            Assert.Equal(values, flat.data<double>().ToArray().Select(v => (double)(float)v).ToArray());
        }
        Assert.Equal(3.21, sink["numpy_f8"]);
        Assert.Equal(0.5, sink["numpy_f4"]);
        Assert.Equal(-42L, sink["numpy_i8"]);
        Assert.Equal(true, sink["numpy_bool"]);
        Assert.Equal([3L, 1L, 4L, 1L, 5L], Assert.IsType<NumpyArray>(sink["numpy_ints"]).Values());
        Assert.Equal("runs/x/model_best.pth", sink["path"]);
        var nested = Assert.IsType<Hashtable>(sink["nested"]);
        Assert.Equal(new object?[] { 1, 2.5, "three", null, true },
            Assert.IsType<ArrayList>(nested["list"]).Cast<object?>().ToArray());
        var tuple = Assert.IsType<object[]>(nested["tuple"]);
        Assert.Equal(1, tuple[0]);
        Assert.Equal(new object[] { 2, 3 }, tuple[1]);
        Assert.Equal(1L << 40, Convert.ToInt64(nested["big"], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(new byte[] { 0, 255, (byte)'a', (byte)'b' }, nested["bytes"]);
    }

    static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32", ScalarType.Float64 => "float64", ScalarType.Float16 => "float16",
            ScalarType.BFloat16 => "bfloat16",
        ScalarType.Int64 => "int64", ScalarType.Int32 => "int32", ScalarType.Int16 => "int16",
            ScalarType.Int8 => "int8",
        ScalarType.Byte => "uint8", ScalarType.Bool => "bool", _ => t.ToString(),
    };

    [Fact]
    public void TheAuthorsCheckpointReadsWithItsNumpyEceAndTheLegacyFormatGivesTheSameTensors()
    {
        var zip = TorchSaveReader.ReadDict(PyTorchFixtures.Committed("reference_resnet8.pth.tar"));
        var legacy = TorchSaveReader.ReadDict(PyTorchFixtures.Committed("reference_resnet8_legacy.pth.tar"));
        foreach (var root in new[] { zip, legacy })
        {
            Assert.Equal(5, root["epoch"]);
            Assert.Equal(3.21, root["its_ece"]);
            Assert.Equal(12.5f, Assert.IsAssignableFrom<Tensor>(root["best_acc1"]).item<float>());
        }
        var a = (PyOrderedDict)zip["state_dict_model"]!;
        var b = (PyOrderedDict)legacy["state_dict_model"]!;
        Assert.Equal(a.Keys.Cast<string>().Order(), b.Keys.Cast<string>().Order());
        Assert.Contains("module.conv1.weight", a.Keys.Cast<string>());
        foreach (var k in a.Keys) Assert.True((((Tensor)a[k]!) == ((Tensor)b[k]!)).all().item<bool>(), (string)k);
    }

    [Fact]
    public void WhatCannotBeReadIsRefusedWithWhatItIs()
    {
        string Error(string file)
        {
            try { TorchSaveReader.Read(file); }
            catch (ConfigException e) { return e.Message; }
            throw new Xunit.Sdk.XunitException($"{file}: read without an error");
        }
        Assert.Contains("holds a 'fractions.Fraction' object", Error(PyTorchFixtures.Committed("unknown_global.pth")));
        Assert.Contains(
            "class '__main__.Features' (for example a whole model, torch.save(model)); H2T.NET reads tensors, state " +
            "dicts and plain containers: save model.state_dict() instead",
            Error(PyTorchFixtures.Committed("whole_model.pth")));

        using var dir = new TempDir();
        Assert.Contains("not a torch.save file", Error(dir.Write("notes.pth", "hello"u8.ToArray())));
        Assert.Contains("(empty file)", Error(dir.Write("empty.pth", [])));
        Assert.Contains("file not found", Error(Path.Combine(dir.Path, "absent.pth")));
        var good = File.ReadAllBytes(PyTorchFixtures.Committed("reference_resnet8.pth.tar"));
        Assert.Contains("truncated or corrupt", Error(dir.Write("cut.pth", good[..(good.Length / 2)])));
        var legacy = File.ReadAllBytes(PyTorchFixtures.Committed("reference_resnet8_legacy.pth.tar"));
        Assert.Contains("truncated", Error(dir.Write("cut-legacy.pth", legacy[..(legacy.Length - 100)])));
    }
}
