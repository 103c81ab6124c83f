#!/usr/bin/env python3
"""Writes the PyTorch fixtures of PyTorchCheckpointTests (run with Debian's python3-torch: /usr/bin/python3).

reference_resnet8.pth.tar  a checkpoint laid out as the H2T reference saves one: {'epoch', 'state_dict_model',
                           'state_dict_classifier', 'best_acc1'}; the model dict carries DataParallel's 'module.'
                           prefixes. The network is the CIFAR ResNet (option-A shortcuts) with one block per stage,
                           1 input channel, 10 classes, and the reference's parameter names.
reference_resnet8_io.pth   {'input': 4x1x28x28, 'logits': eval-mode logits of that network}: the import must
                           reproduce these logits.
The script also serves the export test: `make_reference_checkpoint.py --check EXPORTED.pth IO.pth` loads an
H2T.NET export into the same network and prints its logits for the stored input as JSON.
"""
import collections, json, sys
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if (stride != 1 or cin != cout) else None

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        short = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(y + short)


class Features(nn.Module):
    def __init__(self, in_ch=1, n=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        chans, layers, cin = [16, 32, 64], [], 16
        for i, c in enumerate(chans):
            blocks = [Block(cin if j == 0 else c, c, (1 if i == 0 else 2) if j == 0 else 1) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = c

    def forward(self, x):
        return self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))


class Head(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, fmap):
        return self.fc(fmap.mean(dim=(2, 3)))


def make():
    torch.manual_seed(7)
    model, head = Features(), Head()
    # A few training-mode passes so BatchNorm's running statistics and the weights are far from their init.
    opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.05, momentum=0.9)
    for _ in range(5):
        x = torch.randn(16, 1, 28, 28) * 2 + 0.5
        y = torch.randint(0, 10, (16,))
        loss = F.cross_entropy(head(model(x)), y)
        opt.zero_grad(); loss.backward(); opt.step()
    model.eval(); head.eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        logits = head(model(x))
    state = collections.OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    torch.save({'epoch': 5, 'state_dict_model': state, 'state_dict_classifier': head.state_dict(),
                'best_acc1': torch.tensor(12.5)}, 'reference_resnet8.pth.tar')
    torch.save({'input': x, 'logits': logits}, 'reference_resnet8_io.pth')


def check(exported, io):
    d = torch.load(exported)
    model, head = Features(), Head()
    model.load_state_dict(d['state_dict_model']); head.load_state_dict(d['state_dict_classifier'])
    model.eval(); head.eval()
    with torch.no_grad():
        logits = head(model(torch.load(io)['input']))
    print(json.dumps({'keys': sorted(d.keys()), 'epoch': d['epoch'], 'logits': logits.tolist()}))


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == '--check':
        check(sys.argv[2], sys.argv[3])
    else:
        make()
