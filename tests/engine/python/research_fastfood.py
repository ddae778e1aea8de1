"""The research code's per-tensor Fastfood map, written from its definition (encoder_warping,
low_dim/fastfood.py: FastfoodWrapper / fastfood_torched), run on arrays the C++ test exports, so that
dwarp's `reference` projection mode is checked against an implementation that shares none of its code.

Definition, for a tensor of D entries and theta_d of n entries:
  LL = 2 ** ceil(log2 D)                      (from D alone, as np.ceil(np.log(D) / np.log(2)))
  x  = theta_d padded with zeros to LL, or truncated to its first LL entries when LL < n (F.pad with a
       negative amount)
  P theta_d = (H G Pi H B x)[:D] / (sqrt(LL * sum(G^2)) * sqrt(D / LL)),  (Pi y)[i] = y[Pi[i]]
with H the unnormalised Walsh-Hadamard matrix. Each wrapped tensor is theta_0 + P theta_d.

Usage: research_fastfood.py DIR   (DIR/manifest.json lists the arrays; results are written to DIR)
"""
import json
import math
import os
import sys

import numpy as np
import torch


def load(directory, name, shape=None):
    values = np.fromfile(os.path.join(directory, name), dtype=np.float64)
    return values if shape is None else values.reshape(shape)


def walsh_hadamard(x):
    """Unnormalised fast Walsh-Hadamard transform of a 1-D tensor whose length is a power of two."""
    n = x.shape[0]
    h = 1
    while h < n:
        pairs = x.reshape(-1, 2, h)
        x = torch.stack((pairs[:, 0] + pairs[:, 1], pairs[:, 0] - pairs[:, 1]), dim=1).reshape(n)
        h *= 2
    return x


def research_padded_length(size):
    return 2 ** int(np.ceil(np.log(size) / np.log(2)))


class ResearchProjection:
    def __init__(self, size, signs, permutation, gaussians):
        self.size = size
        self.length = signs.shape[0]
        self.signs = signs
        self.permutation = permutation
        self.gaussians = gaussians
        self.divisor = torch.sqrt(self.length * torch.sum(gaussians ** 2))

    def __call__(self, theta):
        x = torch.nn.functional.pad(theta, (0, self.length - theta.shape[0]))
        y = walsh_hadamard(self.gaussians * walsh_hadamard(self.signs * x)[self.permutation])
        return y[: self.size] / (self.divisor * math.sqrt(self.size / self.length))


def main(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    n = manifest["theta_size"]
    u = torch.from_numpy(load(directory, "u.bin"))
    mismatched = []
    projections = {}
    for t in manifest["targets"]:
        i = t["index"]
        signs = torch.from_numpy(load(directory, "signs_%d.bin" % i))
        permutation = torch.from_numpy(load(directory, "permutation_%d.bin" % i)).long()
        gaussians = torch.from_numpy(load(directory, "gaussians_%d.bin" % i))
        if signs.shape[0] != research_padded_length(t["size"]):
            mismatched.append(t["name"])
        projections[t["name"]] = ResearchProjection(t["size"], signs, permutation, gaussians)
        projections[t["name"]](u).numpy().astype(np.float64).tofile(os.path.join(directory, "python_pu_%d.bin" % i))

    # A few full-batch Adam steps of the MLP relu(x W1^T + b1) W2^T + b2 through the map, in float32.
    net = manifest["net"]
    x = torch.from_numpy(load(directory, "x.bin", net["x_shape"])).float()
    y = torch.from_numpy(load(directory, "y.bin", net["y_shape"])).float()
    initial = {t["name"]: torch.from_numpy(load(directory, "theta0_%d.bin" % t["index"], t["shape"])).float()
               for t in manifest["targets"]}
    for p in projections.values():
        p.signs, p.gaussians = p.signs.float(), p.gaussians.float()
        p.divisor = torch.sqrt(p.length * torch.sum(p.gaussians ** 2))
    theta = torch.zeros(n, requires_grad=True)
    adam = torch.optim.Adam([theta], lr=net["lr"])
    losses = []
    for _ in range(net["steps"]):
        w = {name: initial[name] + projections[name](theta).view(initial[name].shape) for name in initial}
        hidden = torch.relu(x @ w["fc1.weight"].t() + w["fc1.bias"])
        loss = torch.nn.functional.mse_loss(hidden @ w["fc2.weight"].t() + w["fc2.bias"], y)
        losses.append(loss.item())
        adam.zero_grad()
        loss.backward()
        adam.step()
    np.array(losses, dtype=np.float64).tofile(os.path.join(directory, "python_losses.bin"))
    with open(os.path.join(directory, "mismatched.txt"), "w") as f:
        f.write(" ".join(mismatched) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
