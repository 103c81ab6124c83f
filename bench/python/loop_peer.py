"""PyTorch peer for H2T.NET's loop benchmark (issue 7): the training and evaluation loops written the way the
authors' reference does them, on CIFAR-10-LT (IF 100, exp, long-tail seed 0) from the shared JPEG tarball.

Reference style: images decoded once into a uint8 array (as torchvision's CIFAR10 holds them), a Dataset whose
__getitem__ applies per-image PIL transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize),
DataLoader(num_workers=0). Stage I: ResNet-32, mixup (alpha 1) + CE, SGD momentum. Stage II: a class-balanced and an
instance loader, two frozen backbone forwards (BN in train mode), H2T channel fusion at rho 0.25, classifier step.
Eval: the 10,000 test images, batch 256, no grad.

Prints JSON: images/s for each loop (after warm-up batches), eval seconds, and the share of the stage-II step spent in
the fusion op. Usage: python3 loop_peer.py --data cifar10-jpg.tar.gz [--threads 2] [--batches 30]
"""
import argparse, io, json, math, os, random, tarfile, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset, Sampler

from resnet32_step import ResNet32

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
_MEAN, _STD = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)


# torchvision is not packaged for Debian's python3-torch here: the same per-image transforms, written out.
def to_tensor_normalized(img):
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)
    return (x - _MEAN) / _STD


def train_transform(img):
    """RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize, one PIL image at a time."""
    img = ImageOps.expand(img, border=4, fill=0)
    top, left = random.randint(0, 8), random.randint(0, 8)
    img = img.crop((left, top, left + 32, top + 32))
    if random.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return to_tensor_normalized(img)


def load_split(tar_path, split):
    """(N,32,32,3) uint8 images and labels, class folders in label order (sorted names)."""
    images, labels, names = [], [], {}
    with tarfile.open(tar_path) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and f"/{split}/" in f"/{m.name}" and m.name.endswith(".jpg")]
        classes = sorted({m.name.split("/")[-2] for m in members})
        names = {c: i for i, c in enumerate(classes)}
        members.sort(key=lambda m: m.name)
        for m in members:
            img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
            images.append(np.asarray(img, dtype=np.uint8))
            labels.append(names[m.name.split("/")[-2]])
    return np.stack(images), np.array(labels, dtype=np.int64)


def long_tail(labels, imb=100.0, seed=0):
    """The reference's IMBALANCECIFAR10 cut: exp profile, np.random.seed(seed), per-class shuffle."""
    n_cls, n_max = 10, int(np.bincount(labels).max())
    counts = [int(n_max * (1 / imb) ** (c / (n_cls - 1))) for c in range(n_cls)]
    np.random.seed(seed)
    keep = []
    for c in range(n_cls):
        idx = np.where(labels == c)[0]
        np.random.shuffle(idx)
        keep.extend(idx[:counts[c]].tolist())
    return np.array(keep)


class ImageSet(Dataset):
    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


class BalancedSampler(Sampler):
    """Class-balanced: a class uniformly, then an image of it uniformly (the reference's ClassAwareSampler idea)."""
    def __init__(self, labels, n):
        self.by_class = [np.where(labels == c)[0] for c in range(int(labels.max()) + 1)]
        self.n = n

    def __iter__(self):
        for _ in range(self.n):
            idx = self.by_class[random.randrange(len(self.by_class))]
            yield int(idx[random.randrange(len(idx))])

    def __len__(self):
        return self.n


def features(model, x):
    x = F.relu(model.bn1(model.conv1(x)))
    return model.layer3(model.layer2(model.layer1(x)))


def timed_loop(loader, step, batches, warmup=3):
    n, start, it = 0, None, iter(loader)
    for b in range(warmup + batches):
        batch = next(it)
        if b == warmup:
            start = time.perf_counter()
        step(batch)
        if b >= warmup:
            n += batch[0][0].shape[0] if isinstance(batch[0], (tuple, list)) else batch[0].shape[0]
    return n / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0); random.seed(0); np.random.seed(0)
    t0 = time.perf_counter()
    tr_x, tr_y = load_split(a.data, "train")
    te_x, te_y = load_split(a.data, "test")
    keep = long_tail(tr_y)
    tr_x, tr_y = tr_x[keep], tr_y[keep]
    load_s = time.perf_counter() - t0
    train = ImageSet(tr_x, tr_y, train_transform)
    model = ResNet32(3)
    opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=2e-4)

    def stage1_step(batch):
        x, y = batch
        lam = np.random.beta(1.0, 1.0)
        perm = torch.randperm(x.shape[0])
        out = model(lam * x + (1 - lam) * x[perm])
        loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])
        opt.zero_grad(); loss.backward(); opt.step()
        loss.item()

    model.train()
    s1 = timed_loop(DataLoader(train, 128, shuffle=True, num_workers=0, drop_last=True), stage1_step, a.batches)

    for p in model.parameters():
        p.requires_grad = False
    fc = nn.Linear(64, 10)
    opt2 = torch.optim.SGD(fc.parameters(), 0.02, momentum=0.9, weight_decay=5e-4)
    fusion_s, step_s = [0.0], [0.0]

    def stage2_step(pair):
        (xt, yt), (xh, _) = pair
        t = time.perf_counter()
        with torch.no_grad():
            ft, fh = features(model, xt), features(model, xh)
            f0 = time.perf_counter()
            c = ft.shape[1]
            sel = torch.tensor(random.sample(range(c), int(0.25 * c)), dtype=torch.long)
            mask = torch.ones(1, c, 1, 1)
            mask[:, sel] = 0
            fused = mask * ft + (1 - mask) * fh
            fusion_s[0] += time.perf_counter() - f0
        loss = F.cross_entropy(fc(fused.mean((2, 3))), yt)
        opt2.zero_grad(); loss.backward(); opt2.step()
        loss.item()
        step_s[0] += time.perf_counter() - t

    model.train()  # shift-BN: frozen weights, BN in train mode
    n = len(train)
    tail = DataLoader(train, 128, sampler=BalancedSampler(tr_y, n), num_workers=0, drop_last=True)
    head = DataLoader(train, 128, shuffle=True, num_workers=0, drop_last=True)
    s2 = timed_loop(zip(tail, head), stage2_step, a.batches)

    model.eval()
    test = DataLoader(ImageSet(te_x, te_y, to_tensor_normalized), 256, shuffle=False, num_workers=0)
    t = time.perf_counter()
    correct = 0
    with torch.no_grad():
        for x, y in test:
            correct += (fc(features(model, x).mean((2, 3))).argmax(1) == y).sum().item()
    eval_s = time.perf_counter() - t
    print(json.dumps({
        "peer": "pytorch", "torch": torch.__version__, "threads": a.threads, "batches": a.batches, "load_seconds": load_s,
        "train_images": int(len(tr_y)),
        "stage1_images_per_second": s1, "stage2_images_per_second": s2, "eval_seconds": eval_s,
        "fusion_share_of_stage2_step": fusion_s[0] / max(step_s[0], 1e-9),
    }, indent=1))


if __name__ == "__main__":
    main()
