"""Classify image files through exactly the node's path: frame -> NV12 -> backend -> top-k.

    python -m edge_classifier.classify [--model NAME|YAML] [--backend B] [--top-k K] IMAGE...

Prints one JSON line per image:
    {"image": PATH, "results": [{"class_id": "282", "class_name": "tiger cat", "score": 0.39}]}
An image that cannot be read (missing, a directory, not an image) prints {"image": PATH,
"error": "..."}, the other images are still classified, and the exit code is 2.
"""
import json
import sys

from .config import load_config
from .errors import EXIT_USAGE, Parser, cli
from .frames import FrameError, read_image
from .params import BACKENDS, BY_NAME
from .pipeline import Classifier


@cli('classify')
def main(argv=None):
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument('images', nargs='+', metavar='IMAGE')
    parser.add_argument('--model', default='efficientnet_lite0',
                        help='config name (config/<name>.yaml) or path to a YAML file')
    parser.add_argument('--backend', choices=BACKENDS,
                        help="override the config's backend")
    parser.add_argument('--top-k', type=int, help="override the config's top_k")
    parser.add_argument('--models-dir', help='where relative model paths resolve')
    args = parser.parse_args(argv)
    if args.top_k is not None:
        try:
            BY_NAME['top_k'].check(args.top_k)
        except ValueError as exc:
            parser.error(f'--top-k: {exc}')
    cfg = load_config(args.model)
    changes = {}
    if args.backend:
        changes['backend'] = args.backend
    if args.top_k is not None:
        changes['top_k'] = args.top_k
    if args.models_dir:
        changes['models_dir'] = args.models_dir
    if changes:
        cfg = cfg.replace(**changes)
    clf = Classifier(cfg)
    if clf.untrained:
        print(f'WARNING: {clf.backend.describe()}: results are meaningless', file=sys.stderr)
    status = 0
    for path in args.images:
        try:
            results = clf.classify(read_image(path))
            line = {'image': path, 'results': [h.to_dict() for h in results]}
        except FrameError as exc:
            status = EXIT_USAGE
            line = {'image': path, 'error': str(exc)}
        print(json.dumps(line), flush=True)
    clf.close()
    return status


if __name__ == '__main__':
    sys.exit(main())
