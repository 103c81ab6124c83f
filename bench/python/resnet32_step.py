"""PyTorch peer for H2T.NET's isolated model benchmark: the reference ResNet-32 (option-A shortcuts) train step and
eval forward at batch 128, CPU, fixed threads. Prints JSON.
Usage: python3 resnet32_step.py [--threads 2] [--channels-last] [--autocast]
--channels-last puts the model and input in torch.channels_last; --autocast runs the forward (and so the backward)
under torch.autocast('cpu', dtype=torch.bfloat16): the two lines a speed-minded PyTorch user adds."""
import argparse, json, statistics, time
import torch, torch.nn as nn, torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, (cout - cin) // 2
        self.sub = stride != 1 or cin != cout

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad)) if self.sub else x
        return F.relu(y + s)


class ResNet32(nn.Module):
    def __init__(self, cin, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, c = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(5):
                blocks.append(Block(c, planes, stride if i == 0 else 1))
                c = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


def bench(cin, size, channels_last=False, autocast=False, warmup=5, iters=20):
    torch.manual_seed(0)
    m = ResNet32(cin)
    x, y = torch.randn(128, cin, size, size), torch.randint(0, 10, (128,))
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), 0.1, momentum=0.9, weight_decay=2e-4)

    def forward():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            return m(x).float()
    train = []
    m.train()
    for i in range(warmup + iters):
        t = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(forward(), y).backward()
        opt.step()
        if i >= warmup:
            train.append((time.perf_counter() - t) * 1000)
    ev = []
    m.eval()
    with torch.no_grad():
        for i in range(warmup + iters):
            t = time.perf_counter()
            forward().sum().item()
            if i >= warmup:
                ev.append((time.perf_counter() - t) * 1000)
    return {"name": f"resnet32-step-{cin}x{size}", "batch": 128, "channels_last": channels_last, "autocast_bf16": autocast,
            "train_step_median_ms": statistics.median(train), "eval_forward_median_ms": statistics.median(ev)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--autocast", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(json.dumps({"torch": torch.__version__, "threads": a.threads,
                      "results": [bench(1, 28, a.channels_last, a.autocast), bench(3, 32, a.channels_last, a.autocast)]}, indent=1))
