#!/usr/bin/env python3
"""Vision Transformer weights as three real producers lay them out, with their own models' features on real images,
for VisionTransformerTests and VisionTransformerWeightsTests. Run with Debian's /usr/bin/python3 (torch 1.13,
torchvision 0.14).

  make_vit_layout_fixtures.py --torchvision OUT IMAGES...
      torchvision 0.14's vit_b_16 and vit_b_32 (random init, every parameter perturbed so no LayerNorm is 1 / 0 and
      no bias 0), each saved as torchvision's weight files are (model.state_dict(): conv_proj, class_token, encoder.*,
      heads.head.*), and {'input', 'features'}: the encoder's output token 0 (the class token after encoder.ln, what
      torchvision's heads take) on the images at 224 px; for vit_b_16 also at 160 px through torchvision's own
      interpolate_embeddings into a vit_b_16(image_size=160). Too large to commit: the test writes them to a temp folder.

  TIMM=/tmp/x/timm OPEN_CLIP=/tmp/x/openclip/src make_vit_layout_fixtures.py IMAGES...
      the small committed fixtures, into this folder, from timm's and OpenCLIP's own source (fetched, not installed):
        timm_clip_quickgelu.safetensors  timm VisionTransformer as its CLIP towers are built (pre_norm, LayerNorm eps
                                         1e-5, no patch bias) with act_layer='quick_gelu', width 48, depth 2, 4 heads, MLP 96,
                                         patch 8, 32 px, a 24-wide head (the CLIP projection's place); the hub's
                                         model.safetensors layout (safetensors written by save_safetensors below)
        timm_dinov2_reg.safetensors      timm VisionTransformer with DINOv2's options: patch 14, 56 px, layer scale
                                         (init_values), 4 register tokens, no_embed_class, no head; width 48, MLP 96
        open_clip_vit.pt                 open_clip.model.CLIP (quick_gelu=True; vision width 48, MLP 96, 2 layers, head width
                                         12, patch 8, 32 px) saved as OpenCLIP's training loop saves it: {'epoch',
                                         'name', 'state_dict': the DistributedDataParallel-wrapped model's state dict
                                         ('module.' keys)}
        vit_layout_io.pt                 for each: 'NAME.input' (2 real CIFAR images, normalised as the tower expects)
                                         and 'NAME.features' (the class token after the final norm, before any head or
                                         projection: timm's forward_head(pre_logits=True), OpenCLIP's visual tower
                                         with proj = None)
      Safetensors: Debian has no python3-safetensors, so save_safetensors (make_pytorch_fixtures.py) writes the format
      per its spec, __metadata__ {"format": "pt"} included. OpenCLIP's Attention calls
      F.scaled_dot_product_attention(scale=...), which torch 1.13 lacks: its own use_sdpa=False path (the same
      arithmetic, q * scale @ k^T, softmax, @ v) is switched on per block. open_clip's package __init__ needs
      torch.compiler (torch >= 2), so open_clip/ is made a bare package and only open_clip.model is imported.
      Sources used: huggingface/pytorch-image-models aa4b5850c1543fa488abf260f18390eda46cf85d,
      mlfoundations/open_clip 89fb801f1e6087880e951fc8354b8a2077b79c6d.
"""
import collections, os, sys, types
from functools import partial
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_pytorch_fixtures import save_safetensors  # noqa: E402

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
CLIP = ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])


def images(paths, size, norm):
    import torchvision.transforms as T
    from PIL import Image
    tf = T.Compose([T.Resize((size, size), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                    T.Normalize(*norm)])
    return torch.stack([tf(Image.open(p).convert('RGB')) for p in paths])


def perturb(model, seed, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def torchvision_fixtures(out, paths):
    import torchvision
    from torchvision.models.vision_transformer import interpolate_embeddings
    x224 = images(paths, 224, IMAGENET)
    for i, arch in enumerate(['vit_b_16', 'vit_b_32']):
        torch.manual_seed(200 + i)
        model = getattr(torchvision.models, arch)()
        perturb(model, 300 + i)
        model.eval()
        state = model.state_dict()
        torch.save(state, f'{out}/{arch}.pth')
        io = {'input': x224, 'features': class_token(model, x224)}
        if arch == 'vit_b_16':
            small = torchvision.models.vit_b_16(image_size=160)
            small.load_state_dict(interpolate_embeddings(160, 16, collections.OrderedDict(state)))
            small.eval()
            x160 = images(paths, 160, IMAGENET)
            io.update({'input_160': x160, 'features_160': class_token(small, x160)})
        torch.save(io, f'{out}/{arch}_io.pth')


def class_token(model, x):
    with torch.no_grad():  # torchvision's forward up to its heads
        t = model._process_input(x)
        t = torch.cat([model.class_token.expand(t.shape[0], -1, -1), t], dim=1)
        return model.encoder(t)[:, 0]


def committed(paths):
    timm_root, clip_root = os.environ['TIMM'], os.environ['OPEN_CLIP']
    sys.path.insert(0, timm_root)
    from timm.layers import LayerNorm
    from timm.models.vision_transformer import VisionTransformer
    io = {}

    torch.manual_seed(11)
    clip_tower = VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=4, mlp_ratio=2, num_classes=24,
                                   pre_norm=True, norm_layer=partial(LayerNorm, eps=1e-5), act_layer='quick_gelu')
    timm_case(clip_tower, 'timm_clip_quickgelu', images(paths, 32, CLIP), 12, io)

    torch.manual_seed(13)
    dino = VisionTransformer(img_size=56, patch_size=14, embed_dim=48, depth=2, num_heads=4, mlp_ratio=2, num_classes=0,
                             init_values=1e-5, reg_tokens=4, no_embed_class=True)
    timm_case(dino, 'timm_dinov2_reg', images(paths, 56, IMAGENET), 14, io)

    pkg = types.ModuleType('open_clip')
    pkg.__path__ = [os.path.join(clip_root, 'open_clip')]
    sys.modules['open_clip'] = pkg
    import open_clip.model as oc
    torch.manual_seed(15)
    clip = oc.CLIP(embed_dim=24, quick_gelu=True,
                   vision_cfg=oc.CLIPVisionCfg(layers=2, width=48, head_width=12, mlp_ratio=2, patch_size=8, image_size=32),
                   text_cfg=oc.CLIPTextCfg(context_length=8, vocab_size=64, width=32, heads=2, layers=1))
    perturb(clip, 16)
    clip.eval()
    for block in clip.visual.transformer.resblocks:
        block.attn.use_sdpa = False
    wrapped = nn.DataParallel(clip)  # the 'module.' prefix DistributedDataParallel gives OpenCLIP's saved keys
    torch.save({'epoch': 1, 'name': 'vit-tiny-test', 'state_dict': wrapped.state_dict()}, 'open_clip_vit.pt')
    x = images(paths, 32, CLIP)
    clip.visual.proj = None  # the pooled class token after ln_post, before CLIP's projection
    with torch.no_grad():
        io['open_clip_vit.input'], io['open_clip_vit.features'] = x, clip.visual(x)
    torch.save(io, 'vit_layout_io.pt')


def timm_case(model, name, x, seed, io):
    perturb(model, seed)
    model.eval()
    save_safetensors(model.state_dict(), f'{name}.safetensors', {'format': 'pt'})
    with torch.no_grad():
        io[f'{name}.input'], io[f'{name}.features'] = x, model.forward_head(model.forward_features(x), pre_logits=True)


if __name__ == '__main__':
    if len(sys.argv) >= 4 and sys.argv[1] == '--torchvision':
        torchvision_fixtures(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 2:
        paths = [os.path.abspath(p) for p in sys.argv[1:]]
        os.chdir(os.path.dirname(os.path.abspath(__file__)))
        committed(paths)
    else:
        sys.exit(__doc__)
