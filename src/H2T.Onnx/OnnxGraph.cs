using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace H2T.Onnx;

/// <summary>
/// A small writer for an ONNX graph over the schema classes OnnxSharp ships (protoc-generated for Google.Protobuf):
/// float initializers, nodes with typed attributes, fresh value names. It only builds; <see cref="OnnxExporter"/>
/// decides what goes in.
/// </summary>
internal sealed class OnnxGraph
{
    readonly GraphProto graph = new() { Name = "h2t" };
    int next;

    public GraphProto Proto => graph;

    string Fresh(string stem) => $"{stem}_{next++}";

    /// <summary>A float32 constant (raw little-endian bytes, as onnx.numpy_helper writes them).</summary>
    public string Floats(string stem, float[] values, params long[] dims)
    {
        long count = dims.Aggregate(1L, (a, d) => a * d);
        if (count != values.Length) throw new ArgumentException(
            $"{stem}: {values.Length} values for shape [{string.Join(", ", dims)}]");
        var name = Fresh(stem);
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float,
            RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        t.Dims.AddRange(dims);
        graph.Initializer.Add(t);
        return name;
    }

    public string Int64s(string stem, params long[] values)
    {
        var name = Fresh(stem);
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64,
            RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        t.Dims.Add(values.Length);
        graph.Initializer.Add(t);
        return name;
    }

    /// <summary>A 0-d int64 constant (a Gather index that drops its axis).</summary>
    public string Int64Scalar(string stem, long value)
    {
        var name = Fresh(stem);
        graph.Initializer.Add(new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64,
            RawData = ByteString.CopyFrom(BitConverter.GetBytes(value)) });
        return name;
    }

    /// <summary>Adds one node and returns its (single) output's name.</summary>
    public string Node(string op, string[] inputs, params AttributeProto[] attributes)
    {
        var output = Fresh(op.ToLowerInvariant());
        var node = new NodeProto { OpType = op, Name = output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
        return output;
    }

    /// <summary>Renames the last node's output (graph outputs get stable names).</summary>
    public void NameLastOutput(string name)
    {
        var node = graph.Node[^1];
        node.Output[0] = name;
    }

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name,
        Type = AttributeProto.Types.AttributeType.Int, I = value };
    public static AttributeProto Float(string name, float value) => new() { Name = name,
        Type = AttributeProto.Types.AttributeType.Float, F = value };
    public static AttributeProto String(string name, string value) => new() { Name = name,
        Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    /// <summary>A float tensor value with a symbolic first (batch) dimension.</summary>
    public static ValueInfoProto BatchedFloat(string name, string doc, params long[] dimsAfterBatch)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        foreach (var d in dimsAfterBatch) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name, DocString = doc,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType =
                (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
