import numpy as np
import pytest

from edge_classifier.errors import ConfigError
from edge_classifier.postprocess import (ClassFilter, Hypothesis, LabelsError, ScoresError,
                                         load_labels, softmax, top_k)


def test_softmax_is_a_distribution_and_stable():
    p = softmax(np.array([1000.0, 1001.0, 999.0]))
    assert np.isclose(p.sum(), 1.0) and np.argmax(p) == 1


def test_top_k_sorted_with_names_threshold_and_ties():
    scores = np.log(np.array([0.1, 0.5, 0.05, 0.3, 0.05]))
    hyps = top_k(scores, 3, labels=['a', 'b', 'c', 'd', 'e'])
    assert [h.class_id for h in hyps] == ['1', '3', '0']
    assert [h.class_name for h in hyps] == ['b', 'd', 'a']
    assert np.allclose([h.score for h in hyps], [0.5, 0.3, 0.1])
    assert [h.class_id for h in top_k(scores, 5, threshold=0.2)] == ['1', '3']
    tied = top_k(np.zeros(6), 6)
    assert [h.class_id for h in tied] == ['0', '1', '2', '3', '4', '5']
    assert top_k(scores, 1, threshold=0.9) == []


def test_without_softmax_scores_are_clipped_to_unit_interval():
    hyps = top_k(np.array([1.7, -0.2, 0.4]), 3, apply_softmax=False)
    assert [h.score for h in hyps] == [1.0, 0.4, 0.0]


def test_labels_file(tmp_path):
    path = tmp_path / 'l.txt'
    path.write_text('cat\ndog\n\n')
    assert load_labels(path, 2) == ['cat', 'dog']
    with pytest.raises(LabelsError, match='has 2 names, the model has 3 classes'):
        load_labels(path, 3)
    with pytest.raises(LabelsError, match='not found'):
        load_labels(tmp_path / 'missing.txt', 2)


def test_imagenet_labels_from_the_registry_package(default_cfg):
    names = load_labels(default_cfg.resolve(default_cfg.labels_path), 1000)
    assert names[282] == 'tiger cat' and names[967] == 'espresso' and names[0] == 'tench'


def test_top_k_is_sorted_best_first_for_large_k():
    """k in the hundreds, where argpartition's order is arbitrary: the sort must do it."""
    rng = np.random.default_rng(7)
    scores = rng.normal(0, 3, 1000)
    for k in (50, 200, 999, 1000, 5000):
        hyps = top_k(scores, k)
        probs = [h.score for h in hyps]
        assert len(hyps) == min(k, 1000)
        assert probs == sorted(probs, reverse=True)
        assert [int(h.class_id) for h in hyps] == list(np.argsort(-scores, kind='stable'))[:k]


def test_softmax_normalises_each_row_of_a_batch_in_double_precision():
    batch = np.array([[1.0, 2.0, 3.0], [10.0, 10.0, 10.0]], np.float32)
    p = softmax(batch)
    assert p.shape == (2, 3) and p.dtype == np.float64
    assert np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(p[1], 1 / 3)  # each row on its own scale
    e = np.exp(np.array([1.0, 2.0, 3.0]) - 3.0)
    assert np.array_equal(p[0], e / e.sum())


def test_without_labels_names_are_the_class_indices_and_any_shape_is_one_vector():
    hyps = top_k(np.array([[0.0, 5.0], [1.0, 0.0]]), 2)  # (1, N) outputs included
    assert [(h.class_id, h.class_name) for h in hyps] == [('1', '1'), ('2', '2')]


def test_non_finite_scores_are_refused_with_their_count():
    with pytest.raises(ScoresError, match=r'output 2 non-finite score\(s\) of 5 \(NaN or'):
        top_k(np.array([0.1, np.nan, 0.2, np.inf, 0.3]), 3)


def test_a_result_as_a_dict_rounds_the_score():
    h = Hypothesis('967', 'espresso', 0.95512345678)
    assert h.to_dict() == {'class_id': '967', 'class_name': 'espresso', 'score': 0.955123}


def test_labels_with_non_ascii_names(tmp_path):
    path = tmp_path / 'l.txt'
    path.write_bytes('caf\u00e9\nna\u00efve\n'.encode('utf-8'))
    assert load_labels(path, 2) == ['caf\u00e9', 'na\u00efve']


# ---- the class filter (classes, class_thresholds) --------------------------------------------
LABELS = ['tench', 'goldfish', 'great white shark', 'espresso', 'espresso maker', 'cup']
SCORES = np.log(np.array([0.30, 0.25, 0.20, 0.10, 0.10, 0.05]))


def test_classes_keep_only_the_listed_and_top_k_holds_the_best_of_them():
    only = ClassFilter.parse(['cup', '3', 'Goldfish'], [], LABELS, 6)
    hyps = top_k(SCORES, 2, labels=LABELS, class_filter=only)
    assert [h.class_name for h in hyps] == ['goldfish', 'espresso']      # not tench (0.30)
    assert [h.class_name for h in top_k(SCORES, 5, labels=LABELS, class_filter=only)] == \
        ['goldfish', 'espresso', 'cup']                                  # k > the allowed
    assert np.isclose(hyps[0].score, 0.25)       # scores stay the model's, not renormalized


def test_a_class_threshold_drops_that_class_below_it_and_keeps_the_others():
    strict = ClassFilter.parse([], ['tench:0.5', '2:0.1'], LABELS, 6)
    hyps = top_k(SCORES, 3, labels=LABELS, class_filter=strict)
    assert [h.class_name for h in hyps] == ['goldfish', 'great white shark', 'espresso']
    both = ClassFilter.parse(['tench', 'cup'], ['tench:0.5'], LABELS, 6)
    assert [h.class_name for h in top_k(SCORES, 5, labels=LABELS, class_filter=both)] == ['cup']
    assert top_k(SCORES, 5, labels=LABELS, class_filter=both, threshold=0.1) == []


@pytest.mark.parametrize('classes, thresholds, words', [
    (['expresso'], [], ["parameter classes: class 'expresso' is not in the labels",
                        'closest: espresso']),
    (['6'], [], ['parameter classes: class id 6 is out of range', '0..5']),
    ([], ['cup'], ["parameter class_thresholds: 'cup'", '"name_or_id:score"']),
    ([], ['cup:1.5'], ["'cup:1.5'", 'a score from 0 to 1']),
    ([], ['mug:0.5'], ["parameter class_thresholds: class 'mug' is not in the labels"]),
])
def test_a_bad_class_entry_is_an_error_naming_it_and_the_closest(classes, thresholds, words):
    with pytest.raises(ConfigError) as err:
        ClassFilter.parse(classes, thresholds, LABELS, 6)
    for word in words:
        assert word in str(err.value)


def test_without_labels_classes_are_named_by_id():
    assert [h.class_id for h in top_k(SCORES, 5, class_filter=ClassFilter.parse(
        ['4'], [], None, 6))] == ['4']
    with pytest.raises(ConfigError, match='no labels'):
        ClassFilter.parse(['cup'], [], None, 6)


def test_the_class_filters_edges():
    """A score equal to its class threshold is kept; 0 and 1 are valid thresholds; a name
    with a colon in it splits at the last one; a name matches ignoring case only after an
    exact match failed; the hints list the closest labels, or those that contain it."""
    probs = np.array([0.25, 0.25, 0.5])
    assert list(ClassFilter.parse([], ['a:0.25'], ['a', 'b', 'c'], 3).keep(probs)) == [0, 1, 2]
    assert list(ClassFilter.parse([], ['a:0.26'], ['a', 'b', 'c'], 3).keep(probs)) == [1, 2]
    both_ends = ClassFilter.parse([], ['a:0', 'b:1'], ['a', 'b', 'c'], 3)
    assert list(both_ends.keep(probs)) == [0, 2]
    assert both_ends.min_scores.dtype == np.float64
    colon = ClassFilter.parse([], ['ratio: 4:3:0.7'], ['ratio: 4:3', 'other'], 2)
    assert colon.min_scores[0] == 0.7
    cased = ['Cup', 'cup']
    assert list(ClassFilter.parse(['cup'], [], cased, 2).allowed) == [False, True]
    assert list(ClassFilter.parse(['CUP'], [], cased, 2).allowed) == [True, False]
    labels = ['espresso', 'espresso maker', 'coffee mug', 'mug shot', 'tench']
    with pytest.raises(ConfigError) as err:
        ClassFilter.parse(['esspresso'], [], labels, 5)
    assert str(err.value) == ("parameter classes: class 'esspresso' is not in the labels; "
                              "closest: espresso, espresso maker (a name from labels_path, "
                              "or a class id 0..4)")
    with pytest.raises(ConfigError) as err:
        ClassFilter.parse(['xyzzy'], [], labels, 5)
    assert str(err.value) == ("parameter classes: class 'xyzzy' is not in the labels (a name "
                              "from labels_path, or a class id 0..4)")
    with pytest.raises(ConfigError) as err:
        ClassFilter.parse(['cup'], [], None, 5)
    assert str(err.value) == ("parameter classes: 'cup': the model has no labels "
                              "(labels_path): name its classes by id (0..4)")
    for bad in ('a:-0.1', 'a:1.01', 'a:x', ':0.5', 'a'):
        with pytest.raises(ConfigError, match='expected "name_or_id:score"'):
            ClassFilter.parse([], [bad], ['a'], 1)


def test_top_k_of_a_filter_takes_the_best_allowed_in_a_long_vector():
    scores = np.arange(100, dtype=np.float64)          # class 99 best
    allowed = ClassFilter.parse([str(i) for i in range(0, 100, 10)], [], None, 100)
    hyps = top_k(scores.reshape(1, 100), 3, class_filter=allowed)
    assert [h.class_id for h in hyps] == ['90', '80', '70']
    raw = top_k(np.linspace(0, 0.99, 100), 2, apply_softmax=False, class_filter=allowed)
    assert [h.class_id for h in raw] == ['90', '80'] and raw[0].score == 0.9
