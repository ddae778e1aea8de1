#!/usr/bin/python3
"""Export a torchvision model to the TorchScript form dwarp loads (model arch "torchscript").

dwarp reads a TorchScript model out at any named submodule ("layer3", "features.7") by cutting the
model's forward graph after that submodule's call (worker/engine/models/torchscript_readout.h), so the
form is simply torch.jit.script(model) of the torchvision model in eval mode, saved with
torch.jit.save: one file per network, readable at every layer, parameter and buffer names exactly
torchvision's (so the same file can also serve as `weights` of dwarp's built-in resnet18).

    export_torchvision.py resnet18 resnet18.pt                        # random weights (--seed)
    export_torchvision.py resnet18 resnet18.pt --weights ckpt.pth     # a local state dict
    export_torchvision.py alexnet alexnet.pt --trace --image-size 224 224

--reference DIR also writes DIR/reference.pt: a TorchScript module whose buffers are one input image
("image", [1, 3, H, W]) and, for every --layers entry, torchvision's own create_feature_extractor output on
it flattened to [1, features] (buffer "features_<layer with . replaced by _>"); dwarp's tests compare
their read-outs with it.

Needs torch and torchvision (Debian: python3-torch, python3-torchvision; run with /usr/bin/python3).
No network access: weights come only from --weights.
"""
import argparse
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", help="a torchvision.models constructor name, e.g. resnet18, alexnet, vgg16")
    parser.add_argument("out", help="the TorchScript file to write (.pt)")
    parser.add_argument("--weights", help="a local state dict (torch.save of model.state_dict(), possibly under "
                                          "'state_dict' or 'model', 'module.' prefixes allowed); default: random")
    parser.add_argument("--num-classes", type=int, default=None, help="classifier size (default: torchvision's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and the reference image")
    parser.add_argument("--trace", action="store_true",
                        help="torch.jit.trace on a --image-size input instead of torch.jit.script")
    parser.add_argument("--image-size", type=int, nargs=2, default=[224, 224], metavar=("H", "W"),
                        help="input size for --trace and --reference (default 224 224)")
    parser.add_argument("--reference", metavar="DIR", help="also write DIR/reference.pt (see above)")
    parser.add_argument("--layers", default="",
                        help="comma-separated read-out layers for --reference (default: none)")
    return parser.parse_args(argv)


def load_state_dict(path):
    import torch
    state = torch.load(path, map_location="cpu")
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise SystemExit(f"error: --weights {path}: expected a state dict, got {type(state).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def build_model(args):
    import torch
    import torchvision
    constructor = getattr(torchvision.models, args.arch, None)
    if constructor is None or not callable(constructor) or args.arch.startswith("_"):
        valid = sorted(torchvision.models.list_models()) if hasattr(torchvision.models, "list_models") else []
        raise SystemExit(f"error: unknown torchvision arch '{args.arch}'" +
                         (f"; valid archs: {', '.join(valid)}" if valid else ""))
    kwargs = {"weights": None}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    torch.manual_seed(args.seed)
    model = constructor(**kwargs)
    if args.weights:
        missing, unexpected = model.load_state_dict(load_state_dict(args.weights), strict=False)
        if missing or unexpected:
            raise SystemExit(f"error: --weights {args.weights} does not fit {args.arch}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
    return model.eval()


def save_tensors(tensors, path):
    """Writes named tensors as the buffers of a TorchScript module (C++: torch::jit::load(path).attr(name))."""
    import torch

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, value in tensors.items():
                self.register_buffer(name, value.contiguous())

        def forward(self) -> int:
            return 0

    torch.jit.script(Holder()).save(path)


def main(argv):
    args = parse_args(argv)
    import os
    import torch
    from torchvision.models.feature_extraction import create_feature_extractor

    model = build_model(args)
    height, width = args.image_size
    generator = torch.Generator().manual_seed(args.seed)
    image = torch.rand(1, 3, height, width, generator=generator)
    with torch.no_grad():
        if args.trace:
            exported = torch.jit.trace(model, image)
        else:
            exported = torch.jit.script(model)
        exported = exported.eval()
        exported.save(args.out)
        # The saved file must compute what the eager model computes (models returning tuples, such as
        # googlenet's, are not compared here).
        reloaded, eager = torch.jit.load(args.out)(image), model(image)
        if isinstance(reloaded, torch.Tensor) and isinstance(eager, torch.Tensor):
            difference = (reloaded - eager).abs().max().item()
            if difference > 1e-4:
                raise SystemExit(f"error: the exported model differs from torchvision's by {difference}")

        if args.reference:
            layers = [l for l in args.layers.split(",") if l]
            modules = dict(model.named_modules())
            unknown = [l for l in layers if l not in modules]
            if unknown:
                raise SystemExit(f"error: unknown layers {unknown}; valid layers: "
                                 f"{', '.join(n for n in modules if n)}")
            tensors = {"image": image}
            if layers:
                extractor = create_feature_extractor(model, return_nodes={l: l for l in layers}).eval()
                features = extractor(image)
                for layer in layers:
                    tensors["features_" + layer.replace(".", "_")] = torch.flatten(features[layer], 1)
            os.makedirs(args.reference, exist_ok=True)
            save_tensors(tensors, os.path.join(args.reference, "reference.pt"))
    print(f"wrote {args.out}: {args.arch} ({'traced' if args.trace else 'scripted'}, "
          f"{'weights ' + args.weights if args.weights else 'random weights, seed %d' % args.seed}, "
          f"{sum(p.numel() for p in model.parameters())} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
