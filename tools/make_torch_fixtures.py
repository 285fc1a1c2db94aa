#!/usr/bin/env python3
"""Models nobody here wrote: small PyTorch networks with random weights, exported to ONNX by both of
PyTorch's exporters, for Tests/crosscheck/test_torch_models.py.

    tools/make_torch_fixtures.py [--out Tests/fixtures/torch] [--venv .venv-torch]

Re-executes itself in --venv (created and filled with pinned torch, diffusers, onnxscript, onnx on
first use: a few GiB, never needed by `make test`, which only reads the committed outputs).

Networks (each maps (x [N, 1, 16, 16] in data units, t [N]) to an output of x's shape):
  - `diffusers-unet`: diffusers' UNet2DModel, a small config with self-attention (16/32 channels,
    GroupNorm(8), DownBlock2D + AttnDownBlock2D), its own sinusoidal timestep embedding;
  - `scm-unet`: a sCM-style TrigFlow UNet written plainly in PyTorch: positional time embedding of
    c_noise(t) = t, ResBlocks with adaptive double normalization (GroupNorm(h) * pnorm(s(t)) +
    pnorm(b(t)), pnorm = normalization to unit RMS over channels), self-attention through
    F.scaled_dot_product_attention at 8 x 8, nearest upsampling, skip concatenation;
  - `dit`: a DiT-style transformer: 2 x 2 patches, learned position embedding, adaLN-Zero blocks
    (LayerNorm without affine, shift/scale/gate from the time embedding via chunk), multi-head
    SDPA attention, a tanh-GELU MLP, unpatchify with einsum;
  - `conv-mha`: Mish, nn.MultiheadAttention, ConvTranspose2d, bilinear resizes (both corner modes).
Every parameter is random (the zero-initialized layers of the originals would hide whole paths).

Exporters x opsets: TorchScript (`dynamo=False`) at opsets 17 and 20, dynamo (`dynamo=True`) at
18 and 21, all with a symbolic batch dimension `N`. Writes `<net>-<exporter>-opset<k>.onnx` and per
network `<net>.inputs.npz` (x, t at batch 3) and `<net>.outputs.npz` (PyTorch's output, float32
and float64 forward passes: `out`, `out64`), plus `manifest.json` (versions, files, sizes).
"""
import json
import os
import subprocess
import sys
import zlib

from scmtools.paths import ROOT

REQS = ["torch==2.15.0", "diffusers==0.42.1", "onnxscript==0.7.2", "onnx==1.23.2", "onnxruntime==1.31.1",
        "numpy>=2,<3"]
EXPORTS = [("torchscript", 17), ("torchscript", 20), ("dynamo", 18), ("dynamo", 21)]
BATCH = 3


def ensure_venv(venv):
    py = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    probe = subprocess.run([py, "-c", "import torch, diffusers, onnxscript, onnx"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQS])
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


def build_networks():
    import math
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class DiffusersUNet(nn.Module):
        def __init__(self):
            super().__init__()
            from diffusers import UNet2DModel
            self.net = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                                   block_out_channels=(16, 32), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                   up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
                                   attention_head_dim=8)

        def forward(self, x, t):
            return self.net(x, t).sample

    def pnorm(v, eps=1e-4):
        # sCM's pixel norm: v / rms(v) over the channels (dim 1)
        return v / torch.sqrt(torch.mean(v * v, dim=1, keepdim=True) + eps)

    def positional(t, channels):
        half = channels // 2
        freqs = torch.exp(-math.log(1e4) * torch.arange(half, dtype=t.dtype, device=t.device) / (half - 1))
        a = t[:, None] * freqs[None, :]
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)

    class ADNResBlock(nn.Module):
        def __init__(self, cin, cout, temb, groups=8):
            super().__init__()
            self.norm1 = nn.GroupNorm(groups, cin, affine=False)
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
            self.scale = nn.Linear(temb, cout)
            self.shift = nn.Linear(temb, cout)
            self.norm2 = nn.GroupNorm(groups, cout, affine=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
            self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

        def forward(self, x, emb):
            h = self.conv1(F.silu(self.norm1(x)))
            s = pnorm(self.scale(emb))[:, :, None, None]
            b = pnorm(self.shift(emb))[:, :, None, None]
            h = F.silu(self.norm2(h) * s + b)
            return self.skip(x) + self.conv2(h)

    class Attention(nn.Module):
        def __init__(self, c, heads=2, groups=8):
            super().__init__()
            self.heads = heads
            self.norm = nn.GroupNorm(groups, c)
            self.qkv = nn.Conv2d(c, 3 * c, 1)
            self.proj = nn.Conv2d(c, c, 1)

        def forward(self, x):
            n, c, h, w = x.shape
            qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w)
            q, k, v = qkv.unbind(1)
            o = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
            return x + self.proj(o.transpose(-1, -2).reshape(n, c, h, w))

    class SCMUNet(nn.Module):
        def __init__(self, widths=(16, 32), temb=32, groups=8):
            super().__init__()
            self.temb = temb
            self.t1 = nn.Linear(temb, 2 * temb)
            self.t2 = nn.Linear(2 * temb, temb)
            self.conv_in = nn.Conv2d(1, widths[0], 3, padding=1)
            self.down0 = ADNResBlock(widths[0], widths[0], temb, groups)
            self.downsample = nn.Conv2d(widths[0], widths[0], 3, stride=2, padding=1)
            self.down1 = ADNResBlock(widths[0], widths[1], temb, groups)
            self.attn = Attention(widths[1], 2, groups)
            self.mid = ADNResBlock(widths[1], widths[1], temb, groups)
            self.up1 = ADNResBlock(2 * widths[1], widths[1], temb, groups)
            self.upconv = nn.Conv2d(widths[1], widths[0], 3, padding=1)
            self.up0 = ADNResBlock(2 * widths[0], widths[0], temb, groups)
            self.norm_out = nn.GroupNorm(groups, widths[0])
            self.conv_out = nn.Conv2d(widths[0], 1, 3, padding=1)

        def forward(self, x, t):
            emb = self.t2(F.silu(self.t1(positional(t, self.temb))))
            h0 = self.down0(self.conv_in(x), emb)
            h1 = self.attn(self.down1(self.downsample(h0), emb))
            m = self.mid(h1, emb)
            u = self.up1(torch.cat([m, h1], dim=1), emb)
            u = self.upconv(F.interpolate(u, scale_factor=2.0, mode="nearest"))
            u = self.up0(torch.cat([u, h0], dim=1), emb)
            return self.conv_out(F.silu(self.norm_out(u)))

    class DiTBlock(nn.Module):
        def __init__(self, d, heads, temb):
            super().__init__()
            self.heads = heads
            self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
            self.fc1 = nn.Linear(d, 4 * d)
            self.fc2 = nn.Linear(4 * d, d)
            self.ada = nn.Linear(temb, 6 * d)

        def forward(self, x, c):
            shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(F.silu(c)).unsqueeze(1).chunk(6, dim=-1)
            n, l, d = x.shape
            h = self.norm1(x) * (1 + scale1) + shift1
            q, k, v = self.qkv(h).reshape(n, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, l, d)
            x = x + gate1 * self.proj(a)
            h = self.norm2(x) * (1 + scale2) + shift2
            return x + gate2 * self.fc2(F.gelu(self.fc1(h), approximate="tanh"))

    class DiT(nn.Module):
        def __init__(self, size=16, patch=2, d=64, heads=4, depth=2, temb=64):
            super().__init__()
            self.size, self.patch, self.temb = size, patch, temb
            self.embed = nn.Conv2d(1, d, patch, stride=patch)
            self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2, d) * 0.1)
            self.t1 = nn.Linear(temb, d)
            self.t2 = nn.Linear(d, temb)
            self.blocks = nn.ModuleList([DiTBlock(d, heads, temb) for _ in range(depth)])
            self.norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
            self.ada = nn.Linear(temb, 2 * d)
            self.out = nn.Linear(d, patch * patch)

        def forward(self, x, t):
            half = self.temb // 2
            freqs = torch.exp(-math.log(1e4) * torch.arange(half, dtype=t.dtype) / half)
            a = t[:, None] * freqs[None]
            c = self.t2(F.silu(self.t1(torch.cat([torch.cos(a), torch.sin(a)], dim=-1))))
            h = self.embed(x).flatten(2).transpose(1, 2) + self.pos
            for b in self.blocks:
                h = b(h, c)
            shift, scale = self.ada(F.silu(c)).unsqueeze(1).chunk(2, dim=-1)
            h = self.out(self.norm(h) * (1 + scale) + shift)
            g, p = self.size // self.patch, self.patch
            h = h.reshape(h.shape[0], g, g, p, p, 1)
            return torch.einsum("nhwpqc->nchpwq", h).reshape(h.shape[0], 1, g * p, g * p)

    class ConvMHA(nn.Module):
        """What plain PyTorch code also emits: Mish (Softplus + Tanh before opset 18),
        nn.MultiheadAttention (shape arithmetic with Mod), ConvTranspose, bilinear resizes."""
        def __init__(self):
            super().__init__()
            self.conv_in = nn.Conv2d(1, 8, 3, padding=1)
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
            self.up = nn.ConvTranspose2d(8, 8, 2, stride=2)
            self.temb = nn.Linear(1, 8)
            self.conv_out = nn.Conv2d(8, 1, 3, stride=2, padding=1)

        def forward(self, x, t):
            h = F.mish(self.conv_in(x))
            n, c, hh, ww = h.shape
            q = h.flatten(2).transpose(1, 2)
            a, _ = self.mha(q, q, q)
            h = h + a.transpose(1, 2).reshape(n, c, hh, ww)
            h = F.interpolate(h, scale_factor=0.5, mode="bilinear")
            h = self.up(h) * self.temb(t[:, None])[:, :, None, None]
            return self.conv_out(F.interpolate(h, size=(32, 32), mode="bilinear", align_corners=True))

    return {"diffusers-unet": DiffusersUNet, "scm-unet": SCMUNet, "dit": DiT, "conv-mha": ConvMHA}


def randomize(model, seed):
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            fan = p.shape[1] * (p[0, 0].numel() if p.dim() > 2 else 1) if p.dim() >= 2 else max(p.shape[0], 1)
            std = 1.0 / fan ** 0.5 if p.dim() >= 2 else 0.1
            p.copy_(torch.randn(p.shape, generator=g) * std)


def export(model, x, t, path, exporter, opset):
    import torch
    for f in (path, path + ".data"):
        if os.path.exists(f):
            os.remove(f)
    if exporter == "torchscript":
        torch.onnx.export(model, (x, t), path, dynamo=False, opset_version=opset, input_names=["x", "t"],
                          output_names=["out"], dynamic_axes={"x": {0: "N"}, "t": {0: "N"}, "out": {0: "N"}})
    else:
        n = torch.export.Dim("N", min=1, max=4096)
        program = torch.onnx.export(model, (x, t), dynamo=True, opset_version=opset, input_names=["x", "t"],
                                    output_names=["out"], dynamic_shapes={"x": {0: n}, "t": {0: n}})
        program.save(path, external_data=False)


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(ROOT, "Tests", "fixtures", "torch"))
    p.add_argument("--venv", default=os.path.join(ROOT, ".venv-torch"))
    p.add_argument("--only", help="comma-separated network names")
    args = p.parse_args()
    ensure_venv(os.path.abspath(args.venv))

    import numpy as np
    import onnx
    import torch
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    manifest = {"torch": torch.__version__, "onnx": onnx.__version__, "batch": BATCH, "files": {}}
    nets = build_networks()
    only = set(args.only.split(",")) if args.only else set(nets)
    for name, cls in sorted(nets.items()):
        seed = zlib.crc32(name.encode()) % 1000  # per network, whatever the others
        if name not in only:
            continue
        model = cls().eval()
        randomize(model, 1000 + seed)
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(BATCH, 1, 16, 16, generator=g) * 0.5
        t = torch.rand(BATCH, generator=g) * 1.5 + 0.05
        with torch.no_grad():
            out = model(x, t).numpy()
            out64 = model.double()(x.double(), t.double()).numpy()
            model.float()
        np.savez(os.path.join(args.out, f"{name}.inputs.npz"), x=x.numpy(), t=t.numpy())
        np.savez(os.path.join(args.out, f"{name}.outputs.npz"), out=out, out64=out64)
        for exporter, opset in EXPORTS:
            fname = f"{name}-{exporter}-opset{opset}.onnx"
            path = os.path.join(args.out, fname)
            try:
                export(model, x, t, path, exporter, opset)
            except Exception as e:  # an exporter that cannot export a network is a finding, not a stop
                print(f"{fname}: export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}", file=sys.stderr)
                manifest["files"][fname] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
                continue
            m = onnx.load(path)
            onnx.checker.check_model(m, full_check=True)
            ops = sorted({f"{n.domain + ':' if n.domain else ''}{n.op_type}" for n in m.graph.node})
            manifest["files"][fname] = {"network": name, "exporter": exporter, "opset": opset,
                                        "bytes": os.path.getsize(path), "ops": ops,
                                        "opset_import": {o.domain or "ai.onnx": o.version for o in m.opset_import}}
            print(f"{fname}: {os.path.getsize(path)} bytes, {len(m.graph.node)} nodes", file=sys.stderr)
    mpath = os.path.join(args.out, "manifest.json")
    if os.path.exists(mpath) and args.only:
        old = json.load(open(mpath))
        old["files"].update(manifest["files"])
        manifest["files"] = old["files"]
    with open(mpath + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(mpath + ".tmp", mpath)


if __name__ == "__main__":
    main()
