#!/usr/bin/env python3
"""The PyTorch fixtures of PyTorchCheckpointTests and TorchSaveReaderTests, written the way their producers write
them. Run with Debian's python3-torch (1.13) and python3-torchvision (0.14): /usr/bin/python3.

  make_pytorch_fixtures.py            the small committed fixtures, into this folder
  make_pytorch_fixtures.py --torchvision OUT IMAGES...
                                      torchvision resnet50 / resnext50_32x4d / resnet152 / resnet18 / resnet34 state
                                      dicts (as torchvision's own weight files are: model.state_dict(), a plain
                                      OrderedDict with fc.*) and their eval-mode logits on real images; torch.onnx.export
                                      files of resnet18 and resnet50 (BatchNorm folded) and of resnet18 (BatchNorm kept);
                                      resnet18's state dict as the hub's model.safetensors; too large to commit, made
                                      by the test
  make_pytorch_fixtures.py --check EXPORTED IO
                                      loads an H2T.NET export into the reference's network, prints logits as JSON

Committed fixtures (a CIFAR ResNet-8 of the reference's structure: option-A shortcuts, 1 input channel, 10 classes):
  reference_resnet8.pth.tar   what the authors' train_stage1.py saves (it is MiSLAS's save code): model and classifier
                              wrapped in nn.DataParallel ('module.' keys), {'epoch', 'state_dict_model',
                              'state_dict_classifier', 'best_acc1' (0-d tensor), 'its_ece' (numpy.float64)}
  reference_resnet8_single.pth.tar
                              the same run saved without DataParallel, best_acc1 a [1] tensor (AverageMeter's)
  reference_resnet8_legacy.pth.tar
                              reference_resnet8.pth.tar in the legacy (PyTorch < 1.6) format
  mislas_stage2_resnet8.pth.tar
                              MiSLAS's train_stage2.py: the above plus 'state_dict_lws_model' ({'module.learned_norm'})
  ride_resnet8.pth            RIDE's base_trainer._save_checkpoint: {'arch', 'epoch', 'state_dict' ('backbone.*'),
                              'optimizer', 'monitor_best', 'config' (a parse_config.ConfigParser with pathlib paths),
                              'criterion'} of RIDE's ResNet-8 (3 experts, reduced widths 24/48, normed linears, s = 30)
  reference_resnet8_io.pth    {'input': 8 real Fashion-MNIST test images, normalised, 'logits', 'lws_logits',
                              'ride_logits'}: eval-mode logits of the three networks above
  unknown_global.pth          a dict holding a fractions.Fraction (a global the reader does not know)
  whole_model.pth             torch.save(model) of the reference network (a pickled nn.Module, not a state dict)
  kitchen_sink.pth            tensors of every dtype (views and shared storage included), numpy scalars and arrays,
                              paths and builtins; kitchen_sink.json holds the values a reader must find
"""
import collections, gzip, json, pathlib, sys, types
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FMNIST = '/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz'


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


def stage(cin, cout, n, stride):
    return nn.Sequential(*[Block(cin if j == 0 else cout, cout, stride if j == 0 else 1) for j in range(n)])


class Features(nn.Module):
    """The reference's resnet32_fe with one block per stage: returns the feature map."""
    def __init__(self, in_ch=1, n=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1, self.layer2, self.layer3 = stage(16, 16, n, 1), stage(16, 32, n, 2), stage(32, 64, n, 2)

    def forward(self, x):
        return self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))


class Head(nn.Module):
    """The reference's Classifier: pools the map, then fc."""
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, fmap):
        return self.fc(fmap.mean(dim=(2, 3)))


class LearnableWeightScaling(nn.Module):
    """MiSLAS's LWS: one learnt scale per class on the classifier's logits."""
    def __init__(self, num_classes=10):
        super().__init__()
        self.learned_norm = nn.Parameter(torch.ones(1, num_classes))

    def forward(self, x):
        return self.learned_norm * x


class NormedLinear(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cin, cout).uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5))

    def forward(self, x):
        return F.normalize(x, dim=1).mm(F.normalize(self.weight, dim=0))


class RideResNet(nn.Module):
    """RIDE's CIFAR ResNet_s: shared conv1/bn1/layer1, per-expert layer2s/layer3s (24/48 channels), normed linears."""
    def __init__(self, in_ch=1, n=1, experts=3, num_classes=10, s=30):
        super().__init__()
        self.s = s
        self.conv1 = nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = stage(16, 16, n, 1)
        self.layer2s = nn.ModuleList([stage(16, 24, n, 2) for _ in range(experts)])
        self.layer3s = nn.ModuleList([stage(24, 48, n, 2) for _ in range(experts)])
        self.linears = nn.ModuleList([NormedLinear(48, num_classes) for _ in range(experts)])

    def forward(self, x):
        shared = self.layer1(F.relu(self.bn1(self.conv1(x))))
        outs = [self.linears[e](self.layer3s[e](self.layer2s[e](shared)).mean(dim=(2, 3))) * self.s for e in range(len(self.linears))]
        return torch.stack(outs, dim=1).mean(dim=1)


class RideModel(nn.Module):
    """RIDE's model wrapper: its state dict keys are backbone.*"""
    def __init__(self):
        super().__init__()
        self.backbone = RideResNet()

    def forward(self, x):
        return self.backbone(x)


def real_images(count=8):
    with gzip.open(FMNIST) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:count]
    return (torch.from_numpy(raw.astype(np.float32) / 255.0) - 0.2860) / 0.3530


def train_a_little(params, forward, steps=5):
    # A few training-mode passes so the weights and BatchNorm's running statistics are far from their init.
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    for _ in range(steps):
        x = torch.randn(16, 1, 28, 28) * 2 + 0.5
        y = torch.randint(0, 10, (16,))
        loss = F.cross_entropy(forward(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    return opt


def make():
    torch.manual_seed(7)
    model, head = Features(), Head()
    train_a_little(list(model.parameters()) + list(head.parameters()), lambda x: head(model(x)))
    model.eval(); head.eval()
    x = real_images()
    with torch.no_grad():
        logits = head(model(x))

    # The authors' save: DataParallel-wrapped model and classifier, best_acc1 from accuracy(), its_ece from numpy.
    dp_model, dp_head = nn.DataParallel(model), nn.DataParallel(head)
    state = {'epoch': 5, 'state_dict_model': dp_model.state_dict(), 'state_dict_classifier': dp_head.state_dict(),
             'best_acc1': torch.tensor(12.5), 'its_ece': np.float64(3.21)}
    torch.save(state, 'reference_resnet8.pth.tar')
    torch.save(state, 'reference_resnet8_legacy.pth.tar', _use_new_zipfile_serialization=False)
    torch.save({'epoch': 5, 'state_dict_model': model.state_dict(), 'state_dict_classifier': head.state_dict(),
                'best_acc1': torch.tensor([12.5]), 'its_ece': np.float64(3.21)}, 'reference_resnet8_single.pth.tar')

    lws = LearnableWeightScaling()
    with torch.no_grad():
        lws.learned_norm.copy_(torch.linspace(0.5, 1.5, 10).view(1, 10))
        lws_logits = lws(head(model(x)))
    torch.save({'epoch': 10, 'state_dict_model': dp_model.state_dict(), 'state_dict_classifier': dp_head.state_dict(),
                'state_dict_lws_model': nn.DataParallel(lws).state_dict(), 'best_acc1': torch.tensor(40.0),
                'its_ece': np.float64(1.5)}, 'mislas_stage2_resnet8.pth.tar')

    torch.manual_seed(8)
    ride = RideModel()
    opt = train_a_little(ride.parameters(), ride)
    ride.eval()
    with torch.no_grad():
        ride_logits = ride(x)
    # RIDE pickles its parse_config.ConfigParser object; make one of that module and class.
    parse_config = types.ModuleType('parse_config')

    class ConfigParser:
        pass
    ConfigParser.__module__, ConfigParser.__qualname__ = 'parse_config', 'ConfigParser'
    parse_config.ConfigParser = ConfigParser
    sys.modules['parse_config'] = parse_config
    config = ConfigParser()
    config._config = collections.OrderedDict(name='CIFAR100_LT_RIDE', n_gpu=1, arch=collections.OrderedDict(type='ResNet32Model'))
    config.resume = None
    config.load_crt = None
    config._save_dir = pathlib.PosixPath('saved/models/CIFAR100_LT_RIDE/1201_120000')
    config._log_dir = pathlib.PosixPath('saved/log/CIFAR100_LT_RIDE/1201_120000')
    config.log_levels = {0: 30, 1: 20, 2: 10}
    torch.save({'arch': 'RideModel', 'epoch': 5, 'state_dict': ride.state_dict(), 'optimizer': opt.state_dict(),
                'monitor_best': 0.25, 'config': config, 'criterion': collections.OrderedDict()}, 'ride_resnet8.pth')

    torch.save({'input': x, 'logits': logits, 'lws_logits': lws_logits, 'ride_logits': ride_logits}, 'reference_resnet8_io.pth')
    # What the reader must refuse, by name: a class it cannot rebuild, and a whole pickled model.
    import fractions
    torch.save({'epoch': 1, 'ratio': fractions.Fraction(1, 3)}, 'unknown_global.pth')
    torch.save(model, 'whole_model.pth')
    kitchen_sink()


def kitchen_sink():
    g = torch.Generator().manual_seed(3)
    base = torch.randn(4, 6, generator=g)
    sink = collections.OrderedDict()
    sink['float32'] = torch.randn(2, 3, generator=g)
    sink['float64'] = torch.randn(3, generator=g, dtype=torch.float64)
    sink['float16'] = torch.randn(5, generator=g).half()
    sink['bfloat16'] = torch.randn(5, generator=g).bfloat16()
    sink['int64'] = torch.arange(-3, 3, dtype=torch.int64)
    sink['int32'] = torch.arange(4, dtype=torch.int32) * 1000
    sink['int16'] = torch.tensor([-2, 7], dtype=torch.int16)
    sink['int8'] = torch.tensor([-128, 127], dtype=torch.int8)
    sink['uint8'] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sink['bool'] = torch.tensor([True, False, True])
    sink['scalar'] = torch.tensor(2.5)
    sink['column_view'] = base[:, 2]          # a strided view with a storage offset
    sink['transposed'] = base.t()             # non-contiguous
    sink['shares_storage'] = base[1:3]        # same storage as the two above
    sink['numpy_f8'] = np.float64(3.21)
    sink['numpy_f4'] = np.float32(0.5)
    sink['numpy_i8'] = np.int64(-42)
    sink['numpy_bool'] = np.bool_(True)
    sink['numpy_array'] = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    sink['numpy_ints'] = np.array([3, 1, 4, 1, 5], dtype=np.int64)
    sink['path'] = pathlib.PosixPath('runs/x/model_best.pth')
    sink['nested'] = {'list': [1, 2.5, 'three', None, True], 'tuple': (1, (2, 3)), 'big': 2 ** 40, 'bytes': b'\x00\xffab'}
    torch.save(sink, 'kitchen_sink.pth')
    expect = {k: {'dtype': str(v.dtype).replace('torch.', ''), 'shape': list(v.shape), 'values': v.float().flatten().tolist()}
              for k, v in sink.items() if torch.is_tensor(v)}
    expect['numpy_array'] = {'shape': [2, 3], 'values': sink['numpy_array'].flatten().tolist()}
    with open('kitchen_sink.json', 'w') as f:
        json.dump(expect, f, indent=1)


def torchvision_fixtures(out, images):
    import torchvision
    from PIL import Image
    tf = torchvision.transforms.Compose([torchvision.transforms.Resize(256), torchvision.transforms.CenterCrop(224),
                                         torchvision.transforms.ToTensor(),
                                         torchvision.transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    x = torch.stack([tf(Image.open(p).convert('RGB')) for p in images])
    for i, arch in enumerate(['resnet50', 'resnext50_32x4d', 'resnet152', 'resnet18', 'resnet34']):
        torch.manual_seed(100 + i)
        model = getattr(torchvision.models, arch)()
        with torch.no_grad():  # train-mode passes give BatchNorm running statistics that are not 0 / 1
            model.train()
            for _ in range(2):
                model(torch.randn(4, 3, 64, 64))
        model.eval()
        with torch.no_grad():
            logits = model(x)
        torch.save(model.state_dict(), f'{out}/{arch}.pth')
        torch.save({'input': x, 'logits': logits}, f'{out}/{arch}_io.pth')
        if arch in ('resnet18', 'resnet50'):
            # torch.onnx.export as users run it: eval mode folds every BatchNorm into its Conv ...
            torch.onnx.export(model, x[:1], f'{out}/{arch}.onnx', opset_version=13, input_names=['input'],
                              output_names=['logits'], dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}})
        if arch == 'resnet18':
            # timm's resnet18.tv_in1k is torchvision's network under the same names; the hub serves its state dict.
            save_safetensors(model.state_dict(), f'{out}/resnet18.safetensors', {'format': 'pt'})
            # ... and TrainingMode.PRESERVE keeps the BatchNormalization nodes.
            torch.onnx.export(model, x[:1], f'{out}/{arch}_bn.onnx', opset_version=13, input_names=['input'],
                              output_names=['logits'], dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}},
                              training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)


def save_safetensors(tensors, path, metadata):
    """safetensors as safetensors.torch.save_file writes it (Debian has no package of it): an 8-byte little-endian
    header length, a JSON header ({"__metadata__": {...}, name: {dtype, shape, data_offsets}}) padded with spaces to a
    multiple of 8, then the tensors' little-endian bytes, largest dtype first, then by name."""
    import struct
    dtypes = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.float64: 'F64', torch.int64: 'I64'}
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, blobs, offset = {'__metadata__': metadata}, [], 0
    for name, t in items:
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {'dtype': dtypes[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


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
    elif len(sys.argv) >= 4 and sys.argv[1] == '--torchvision':
        torchvision_fixtures(sys.argv[2], sys.argv[3:])
    else:
        make()
