using H2T.Runtime;
using static TorchSharp.torch;

namespace H2T.Tests.Runtime;

/// <summary>Proves libtorch really runs inside the test host: tensor ops, conv forward/backward, an SGD step.</summary>
public sealed class TorchSmokeTests
{
    public TorchSmokeTests() => TorchRuntime.Initialize(threads: 2);

    [Fact]
    public void TensorArithmeticIsCorrect()
    {
        using var scope = NewDisposeScope();
        var a = arange(6, dtype: float32).reshape(2, 3);
        var s = a.matmul(a.T);
        Assert.Equal(new float[] { 5, 14, 14, 50 }, s.data<float>().ToArray());
    }

    [Fact]
    public void ConvForwardBackwardAndSgdStepReduceTheLoss()
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        var model = nn.Sequential(
            ("conv", nn.Conv2d(3, 8, 3, padding: 1)),
            ("bn", nn.BatchNorm2d(8)),
            ("relu", nn.ReLU()),
            ("pool", nn.AdaptiveAvgPool2d(1)),
            ("flat", nn.Flatten()),
            ("fc", nn.Linear(8, 4)));
        var opt = optim.SGD(model.parameters(), 0.1, momentum: 0.9);
        var x = randn(16, 3, 8, 8);
        var y = randint(0, 4, 16, dtype: int64);
        var convWeight = model.parameters().First();
        var before = convWeight.clone();
        float first = 0, last = 0;
        for (int step = 0; step < 20; step++)
        {
            using var stepScope = NewDisposeScope();
            opt.zero_grad();
            var loss = nn.functional.cross_entropy(model.call(x), y);
            loss.backward();
            Assert.NotNull(convWeight.grad);
            Assert.True(convWeight.grad!.abs().sum().item<float>() > 0, "gradient must reach the conv layer");
            opt.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        Assert.True(last < first * 0.8, $"loss should fall: {first} -> {last}");
        Assert.False(convWeight.allclose(before), "the SGD step must change the conv weights");
        opt.Dispose();
        model.Dispose();
    }
}
