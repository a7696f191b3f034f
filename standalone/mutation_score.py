"""The score of `make mutation`: per module, mutmut's verdicts (from mutants/*.meta) and
the share killed. Killed counts mutants a test failed on, or that ran into mutmut's timeout
(a mutant that makes the code loop forever is caught too). Usage, from the repository root
after `mutmut run`:  python standalone/mutation_score.py [--survivors]
"""
import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code  # mutmut's own exit code -> verdict

COLUMNS = ('killed', 'timeout', 'survived', 'no tests', 'not checked', 'other')


def verdict(code):
    """mutmut's verdict, the rare ones (suspicious, segfault, skipped, ...) as 'other'."""
    status = status_by_exit_code[code]
    return status if status in COLUMNS else 'other'


def verdicts(root):
    by_module = {}
    for meta in sorted((root / 'mutants').rglob('*.py.meta')):
        codes = json.loads(meta.read_text())['exit_code_by_key']
        module = str(meta.relative_to(root / 'mutants'))[:-len('.meta')]
        by_module[module] = {key: verdict(code) for key, code in codes.items()}
    return by_module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--survivors', action='store_true', help='list the surviving mutants')
    parser.add_argument('--fail-under', type=float, default=0.0, metavar='PERCENT',
                        help='exit 1 when the score is below this')
    args = parser.parse_args(argv)
    by_module = verdicts(Path.cwd())
    if not by_module:
        sys.exit('no mutants/*.meta here: run `make mutation` (or mutmut run) first')
    print('| module | mutants | ' + ' | '.join(COLUMNS) + ' | score |')
    print('|---|---:|' + '---:|' * (len(COLUMNS) + 1))
    total = Counter()
    for module, keys in by_module.items():
        counts = Counter(keys.values())
        total.update(counts)
        caught = counts['killed'] + counts['timeout']
        print(f'| {module} | {len(keys)} | ' + ' | '.join(str(counts[c]) for c in COLUMNS) +
              f' | {100 * caught / max(len(keys), 1):.1f} % |')
    n = sum(total.values())
    caught = total['killed'] + total['timeout']
    print(f'| **all** | {n} | ' + ' | '.join(str(total[c]) for c in COLUMNS) +
          f' | **{100 * caught / max(n, 1):.1f} %** |')
    score = 100 * caught / max(n, 1)
    if args.survivors:
        for module, keys in by_module.items():
            for key, status in keys.items():
                if status in ('survived', 'no tests'):
                    print(f'{status}: {key}')
    if score < args.fail_under:
        print(f'mutation score {score:.1f} % is under {args.fail_under:g} %', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
