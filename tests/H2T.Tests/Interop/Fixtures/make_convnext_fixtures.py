#!/usr/bin/env python3
"""ConvNeXt fixtures from torchvision 0.14 (Debian's python3-torchvision), too large to commit; ConvNeXtTests runs
this into the temp folder:

  make_convnext_fixtures.py OUT IMAGES...

For convnext_tiny (torchvision.models.convnext_tiny) and convnext_micro (torchvision's ConvNeXt class with widths
16/32/64/128 and one block per stage, H2T.NET's CI network) it writes ARCH.pth, the state dict as torchvision's weight
files hold it (model.state_dict(): features.*, classifier.0 the final LayerNorm2d, classifier.2 the Linear), and
ARCH_io.pth: {'input': the images (Resize 256, CenterCrop 224, ImageNet normalisation), 'features': model.features'
map, 'pre_logits': classifier.0 of the pooled map, flattened, 'logits': eval-mode logits, 'drop': every block's
stochastic-depth probability}. Random init, then layer_scale and every LayerNorm's affine redrawn so that the blocks'
branches matter (torchvision starts layer_scale at 1e-6, where a block is nearly the identity).
"""
import sys
import torch
import torchvision
from functools import partial
from torchvision.models.convnext import ConvNeXt, CNBlockConfig


def micro():
    cfg = [CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, 128, 1), CNBlockConfig(128, None, 1)]
    return ConvNeXt(cfg, stochastic_depth_prob=0.0)


def main(out, images):
    from PIL import Image
    tf = torchvision.transforms.Compose([torchvision.transforms.Resize(256), torchvision.transforms.CenterCrop(224),
                                         torchvision.transforms.ToTensor(),
                                         torchvision.transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    x = torch.stack([tf(Image.open(p).convert('RGB')) for p in images])
    for i, (arch, make) in enumerate([('convnext_tiny', torchvision.models.convnext_tiny), ('convnext_micro', micro)]):
        torch.manual_seed(200 + i)
        model = make()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith('layer_scale'):
                    p.uniform_(0.05, 0.5)
            for m in model.modules():
                if isinstance(m, torch.nn.LayerNorm):
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
        model.eval()
        with torch.no_grad():
            feats = model.features(x)
            pre = torch.flatten(model.classifier[0](model.avgpool(feats)), 1)
            logits = model(x)
        drop = [b.stochastic_depth.p for stage in model.features for b in stage
                if isinstance(b, torchvision.models.convnext.CNBlock)]
        torch.save(model.state_dict(), f'{out}/{arch}.pth')
        torch.save({'input': x, 'features': feats, 'pre_logits': pre, 'logits': logits,
                    'drop': torch.tensor(drop, dtype=torch.float64)}, f'{out}/{arch}_io.pth')


if __name__ == '__main__':
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
