import json
import warnings

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
    roc_curve,
)

from dermaudit.classes import CLASSES
from dermaudit.exceptions import DataValidationError, ParamsError
from dermaudit.metrics import (
    OVERALL_METRICS,
    PER_CLASS_METRICS,
    _resample_counts,
    _score_resamples,
    evaluate_predictions,
    metric_deltas,
    one_vs_rest_metrics,
    paired_metric_deltas,
    point_metrics,
    sensitivity_at_specificity,
)


def make_predictions(n=400, seed=0, class_prior=(0.05, 0.08, 0.11, 0.03, 0.11, 0.60, 0.02), round_to=None):
    """Labels and softmax probabilities of a moderately good 7-class model."""
    rng = np.random.default_rng(seed)
    y_true = rng.choice(len(class_prior), size=n, p=class_prior)
    logits = rng.normal(size=(n, len(class_prior)))
    logits[np.arange(n), y_true] += 1.5
    y_prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if round_to is not None:
        y_prob = np.round(y_prob, round_to)
        y_prob /= y_prob.sum(axis=1, keepdims=True)
    return y_true, y_prob


def brute_force_sensitivity(y_true_binary, y_score, specificity):
    """Maximum TPR over every threshold t (predict positive when score >= t) with 1 - FPR >= specificity."""
    y_true_binary = np.asarray(y_true_binary, dtype=bool)
    positives, negatives = y_score[y_true_binary], y_score[~y_true_binary]
    best = 0.0
    for threshold in np.r_[np.unique(y_score), np.inf]:
        fpr = np.mean(negatives >= threshold)
        if 1.0 - fpr >= specificity - 1e-12:
            best = max(best, np.mean(positives >= threshold))
    return best


def roc_curve_sensitivity(y_true_binary, y_score, specificity):
    fpr, tpr, _ = roc_curve(y_true_binary, y_score, drop_intermediate=False)
    return tpr[1.0 - fpr >= specificity - 1e-12].max()


# ---------------------------------------------------------------------------
# sensitivity_at_specificity
# ---------------------------------------------------------------------------


def test_sensitivity_hand_computed_case():
    negative_scores = np.arange(20) / 20  # 0.00 ... 0.95
    positive_scores = np.array([0.97, 0.9, 0.5, 0.2])
    y_score = np.r_[negative_scores, positive_scores]
    y_true = np.r_[np.zeros(20), np.ones(4)]

    # At threshold 0.95 one negative of 20 passes (FPR 0.05) and one positive of 4.
    assert sensitivity_at_specificity(y_true, y_score, 0.95) == 0.25


def test_sensitivity_perfect_classifier_is_one():
    y_true = np.r_[np.zeros(50), np.ones(5)]
    y_score = np.r_[np.linspace(0.0, 0.4, 50), np.linspace(0.6, 0.9, 5)]
    assert sensitivity_at_specificity(y_true, y_score) == 1.0


def test_sensitivity_inverted_classifier_is_zero():
    y_true = np.r_[np.zeros(50), np.ones(5)]
    y_score = np.r_[np.linspace(0.6, 0.9, 50), np.linspace(0.0, 0.4, 5)]
    assert sensitivity_at_specificity(y_true, y_score) == 0.0


def test_sensitivity_tied_blocks_on_one_line():
    # Two tied (positive, negative) pairs put three ROC points on one line, and
    # drop_intermediate=True would drop the middle one, which gives the result.
    y_true = np.r_[1, 0, 1, 0, np.zeros(18)]
    y_score = np.r_[0.9, 0.9, 0.8, 0.8, np.linspace(0.0, 0.5, 18)]
    assert sensitivity_at_specificity(y_true, y_score, 0.95) == 0.5


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("specificity", [0.0, 0.5, 0.9, 0.95, 1.0])
def test_sensitivity_matches_roc_curve(seed, specificity):
    rng = np.random.default_rng(seed)
    y_true = rng.random(120) < 0.2
    # Rounding to one decimal creates many ties between positives and negatives.
    y_score = np.round(rng.random(120) * 0.7 + 0.3 * y_true, 1)

    result = sensitivity_at_specificity(y_true, y_score, specificity)

    assert result == pytest.approx(roc_curve_sensitivity(y_true, y_score, specificity), abs=1e-12)
    assert result == pytest.approx(brute_force_sensitivity(y_true, y_score, specificity), abs=1e-12)


def test_sensitivity_one_class_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="only one class"):
        result = sensitivity_at_specificity(np.zeros(10), np.linspace(0, 1, 10))
    assert np.isnan(result)


@pytest.mark.parametrize("specificity", [-0.1, 1.5, "0.95", True])
def test_sensitivity_invalid_specificity_raises(specificity):
    with pytest.raises(ParamsError, match="specificity must"):
        sensitivity_at_specificity([0, 1], [0.2, 0.8], specificity)


# ---------------------------------------------------------------------------
# one_vs_rest_metrics and point_metrics
# ---------------------------------------------------------------------------


def test_one_vs_rest_matches_sklearn():
    y_true, y_prob = make_predictions(round_to=2)
    table = one_vs_rest_metrics(y_true, y_prob)

    assert list(table.index) == list(CLASSES)
    for k, class_name in enumerate(CLASSES):
        is_positive = y_true == k
        assert table.at[class_name, "auroc"] == pytest.approx(roc_auc_score(is_positive, y_prob[:, k]), abs=1e-12)
        expected_auprc = average_precision_score(is_positive, y_prob[:, k])
        assert table.at[class_name, "auprc"] == pytest.approx(expected_auprc, abs=1e-12)
        assert table.at[class_name, "sens_at_95spec"] == pytest.approx(
            roc_curve_sensitivity(is_positive, y_prob[:, k], 0.95), abs=1e-12
        )
        assert table.at[class_name, "n_positive"] == is_positive.sum()


def test_one_vs_rest_missing_class_is_nan():
    y_true, y_prob = make_predictions()
    y_true[y_true == 3] = 5  # no "df" sample left

    with pytest.warns(UndefinedMetricWarning, match="'df'"):
        table = one_vs_rest_metrics(y_true, y_prob)

    assert table.loc["df", list(PER_CLASS_METRICS)].isna().all()
    assert table.at["df", "n_positive"] == 0
    assert table.drop(index="df")[list(PER_CLASS_METRICS)].notna().all().all()


def test_point_metrics_match_sklearn():
    y_true, y_prob = make_predictions()
    y_pred = y_prob.argmax(axis=1)
    result = point_metrics(y_true, y_prob)

    assert result["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
    assert result["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    assert result["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert result["macro_auroc"] == pytest.approx(roc_auc_score(y_true, y_prob, multi_class="ovr"), abs=1e-12)
    expected_auprc = np.mean([average_precision_score(y_true == k, y_prob[:, k]) for k in range(7)])
    assert result["macro_auprc"] == pytest.approx(expected_auprc, abs=1e-12)


def test_point_metrics_missing_class_match_sklearn():
    y_true, y_prob = make_predictions()
    y_true[y_true == 6] = 5  # "vasc" absent from y_true, but it can still be predicted
    y_pred = y_prob.argmax(axis=1)
    assert np.any(y_pred == 6)

    with pytest.warns(UndefinedMetricWarning):
        result = point_metrics(y_true, y_prob)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_balanced = balanced_accuracy_score(y_true, y_pred)
    assert result["balanced_accuracy"] == pytest.approx(expected_balanced, abs=1e-12)
    assert result["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    defined_aurocs = [roc_auc_score(y_true == k, y_prob[:, k]) for k in range(6)]
    assert result["macro_auroc"] == pytest.approx(np.mean(defined_aurocs), abs=1e-12)


def test_point_metrics_single_label():
    y_true, y_prob = make_predictions(n=30)
    y_true[:] = 5
    y_pred = y_prob.argmax(axis=1)

    with pytest.warns(UndefinedMetricWarning) as record:
        result = point_metrics(y_true, y_prob)

    assert any("macro_auroc is undefined" in str(warning.message) for warning in record)

    assert result["balanced_accuracy"] == pytest.approx(np.mean(y_pred == 5), abs=1e-12)
    assert result["accuracy"] == pytest.approx(np.mean(y_pred == 5), abs=1e-12)
    assert np.isnan(result["macro_auroc"])


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def test_rows_not_summing_to_one_raise():
    y_true, y_prob = make_predictions(n=20)
    y_prob[7] *= 1.1
    with pytest.raises(DataValidationError, match=r"row 7 of y_prob sums to 1\.1"):
        point_metrics(y_true, y_prob)


def test_probability_outside_unit_interval_raises():
    y_true, y_prob = make_predictions(n=20)
    y_prob[2, :2] = [-0.5, y_prob[2, 0] + y_prob[2, 1] + 0.5]
    with pytest.raises(DataValidationError, match=r"y_prob\[2\]"):
        point_metrics(y_true, y_prob)


def test_nan_probability_raises():
    y_true, y_prob = make_predictions(n=20)
    y_prob[4, 0] = np.nan
    with pytest.raises(DataValidationError, match=r"y_prob\[4\].*NaN"):
        point_metrics(y_true, y_prob)


def test_label_out_of_range_raises():
    y_true, y_prob = make_predictions(n=20)
    y_true[3] = 9
    with pytest.raises(DataValidationError, match=r"y_true\[3\] = 9 is not a class index in 0\.\.6"):
        point_metrics(y_true, y_prob)


def test_non_integer_labels_raise():
    _, y_prob = make_predictions(n=3)
    with pytest.raises(DataValidationError, match="integer class indices"):
        point_metrics(np.array([0.5, 1.0, 2.0]), y_prob)


def test_shape_mismatch_raises():
    y_true, y_prob = make_predictions(n=20)
    with pytest.raises(DataValidationError, match=r"shape \(n_samples, n_classes\) = \(19, n_classes\)"):
        point_metrics(y_true[:19], y_prob)


def test_wrong_class_count_raises():
    y_true, y_prob = make_predictions(n=20, class_prior=(0.5, 0.5))
    with pytest.raises(DataValidationError, match="must have 7 columns"):
        evaluate_predictions(y_true, y_prob, n_bootstrap=0)


# ---------------------------------------------------------------------------
# Bootstrap scoring
# ---------------------------------------------------------------------------


def test_resample_scores_match_sklearn():
    y_true, y_prob = make_predictions(n=300, round_to=2)
    rng = np.random.default_rng(3)
    weights = _resample_counts(y_true.size, 4, None, rng)
    overall, per_class = _score_resamples(y_true, y_prob, weights)

    for i in range(weights.shape[0]):
        rows = np.repeat(np.arange(y_true.size), weights[i].astype(int))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            expected = point_metrics(y_true[rows], y_prob[rows])
            expected_per_class = one_vs_rest_metrics(y_true[rows], y_prob[rows])
        for name in OVERALL_METRICS:
            assert overall[name][i] == pytest.approx(expected[name], abs=1e-10), name
        for name in PER_CLASS_METRICS:
            np.testing.assert_allclose(per_class[name][i], expected_per_class[name], atol=1e-10, err_msg=name)


def test_cluster_resample_keeps_groups_whole():
    groups = np.array([0, 0, 0, 1, 2, 2])
    weights = _resample_counts(6, 50, groups, np.random.default_rng(0))

    assert np.all(weights[:, 0] == weights[:, 1])
    assert np.all(weights[:, 0] == weights[:, 2])
    assert np.all(weights[:, 4] == weights[:, 5])
    group_draws = weights[:, [0, 3, 4]]
    assert np.all(group_draws.sum(axis=1) == 3)


# ---------------------------------------------------------------------------
# evaluate_predictions
# ---------------------------------------------------------------------------


def test_evaluate_values_match_point_metrics():
    y_true, y_prob = make_predictions()
    result = evaluate_predictions(y_true, y_prob, n_bootstrap=50)
    expected = point_metrics(y_true, y_prob)

    assert result["n"] == y_true.size
    for name in OVERALL_METRICS:
        assert result["overall"][name]["value"] == expected[name]


def test_evaluate_is_json_ready():
    y_true, y_prob = make_predictions()
    result = evaluate_predictions(y_true, y_prob, n_bootstrap=20)
    assert json.loads(json.dumps(result)) == result


def test_evaluate_confusion_matrix_matches_sklearn():
    y_true, y_prob = make_predictions()
    y_true[y_true == 3] = 0  # a class with no sample still gets its row and column
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        result = evaluate_predictions(y_true, y_prob, n_bootstrap=0)

    expected = confusion_matrix(y_true, y_prob.argmax(axis=1), labels=range(7))
    assert result["confusion_matrix"] == expected.tolist()
    assert np.shape(result["confusion_matrix"]) == (7, 7)


def test_evaluate_per_class_structure():
    y_true, y_prob = make_predictions()
    result = evaluate_predictions(y_true, y_prob, n_bootstrap=20)

    assert list(result["per_class"]) == list(CLASSES)
    for k, class_name in enumerate(CLASSES):
        entry = result["per_class"][class_name]
        assert entry["n_positive"] == int(np.sum(y_true == k))
        assert entry["auroc"]["value"] == pytest.approx(roc_auc_score(y_true == k, y_prob[:, k]), abs=1e-12)
        assert set(entry["auroc"]) == {"value", "ci_low", "ci_high", "n_resamples"}


def test_evaluate_intervals_contain_values():
    y_true, y_prob = make_predictions(n=1000)
    result = evaluate_predictions(y_true, y_prob, n_bootstrap=300)
    for name, entry in result["overall"].items():
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], name
        assert entry["ci_low"] < entry["ci_high"], name


def test_evaluate_same_seed_is_deterministic():
    y_true, y_prob = make_predictions()
    first = evaluate_predictions(y_true, y_prob, n_bootstrap=30, seed=5)
    second = evaluate_predictions(y_true, y_prob, n_bootstrap=30, seed=5)
    assert first == second


def test_evaluate_seed_changes_intervals():
    y_true, y_prob = make_predictions()
    first = evaluate_predictions(y_true, y_prob, n_bootstrap=30, seed=1)
    second = evaluate_predictions(y_true, y_prob, n_bootstrap=30, seed=2)
    assert first["overall"]["macro_auroc"]["ci_low"] != second["overall"]["macro_auroc"]["ci_low"]


def test_evaluate_interval_narrows_with_confidence():
    y_true, y_prob = make_predictions()
    wide = evaluate_predictions(y_true, y_prob, n_bootstrap=200, confidence=0.95)["overall"]["accuracy"]
    narrow = evaluate_predictions(y_true, y_prob, n_bootstrap=200, confidence=0.5)["overall"]["accuracy"]
    assert narrow["ci_high"] - narrow["ci_low"] < wide["ci_high"] - wide["ci_low"]


def test_cluster_bootstrap_widens_duplicated_data():
    # Four copies of every image: resampling images independently treats them as
    # 4x the data, and resampling lesions does not.
    y_true, y_prob = make_predictions(n=250)
    y_true_copies, y_prob_copies = np.repeat(y_true, 4), np.repeat(y_prob, 4, axis=0)
    lesion_ids = np.repeat([f"lesion_{i}" for i in range(250)], 4)

    naive = evaluate_predictions(y_true_copies, y_prob_copies, n_bootstrap=400)["overall"]["accuracy"]
    cluster = evaluate_predictions(y_true_copies, y_prob_copies, groups=lesion_ids, n_bootstrap=400)
    original = evaluate_predictions(y_true, y_prob, n_bootstrap=400)["overall"]["accuracy"]

    def width(entry):
        return entry["ci_high"] - entry["ci_low"]

    assert cluster["ci_method"].startswith("cluster")
    assert cluster["n_groups"] == 250
    assert width(cluster["overall"]["accuracy"]) > 1.5 * width(naive)
    assert width(cluster["overall"]["accuracy"]) == pytest.approx(width(original), rel=0.3)


def test_evaluate_skips_undefined_resamples():
    y_true, y_prob = make_predictions(n=300)
    y_true[y_true == 6] = 5
    y_true[0] = 6  # one "vasc" sample: about 37% of resamples lack it
    y_prob[0] = np.full(7, 1 / 7)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        result = evaluate_predictions(y_true, y_prob, n_bootstrap=400)

    vasc_auroc = result["per_class"]["vasc"]["auroc"]
    assert 0.5 * 400 < vasc_auroc["n_resamples"] < 0.75 * 400
    assert np.isfinite(vasc_auroc["ci_low"])
    assert result["overall"]["macro_auroc"]["n_resamples"] == 400


def test_evaluate_zero_resamples_gives_nan_intervals():
    y_true, y_prob = make_predictions()
    result = evaluate_predictions(y_true, y_prob, n_bootstrap=0)
    assert np.isnan(result["overall"]["accuracy"]["ci_low"])
    assert np.isfinite(result["overall"]["accuracy"]["value"])


def test_evaluate_missing_group_raises():
    y_true, y_prob = make_predictions(n=10)
    groups = np.array(["a"] * 9 + [None], dtype=object)
    with pytest.raises(DataValidationError, match=r"groups\[9\] is missing"):
        evaluate_predictions(y_true, y_prob, groups=groups, n_bootstrap=5)


@pytest.mark.parametrize(("n_bootstrap", "confidence"), [(-1, 0.95), (2.5, 0.95), (10, 1.0), (10, 0.0), (10, "0.9")])
def test_evaluate_invalid_bootstrap_params_raise(n_bootstrap, confidence):
    y_true, y_prob = make_predictions(n=10)
    with pytest.raises(ParamsError, match="must be"):
        evaluate_predictions(y_true, y_prob, n_bootstrap=n_bootstrap, confidence=confidence)


# ---------------------------------------------------------------------------
# Deltas
# ---------------------------------------------------------------------------


def test_metric_deltas_hand_computed():
    clean = {"accuracy": 0.8, "macro_auroc": 0.9}
    shifted = {"accuracy": 0.7, "macro_auroc": 0.95}
    deltas = metric_deltas(clean, shifted)
    assert deltas["accuracy"] == pytest.approx(-0.1)
    assert deltas["macro_auroc"] == pytest.approx(0.05)


def test_metric_deltas_of_evaluate_results():
    y_true, y_prob = make_predictions()
    _, y_prob_shifted = make_predictions(seed=1)
    clean = evaluate_predictions(y_true, y_prob, n_bootstrap=0)
    shifted = evaluate_predictions(y_true, y_prob_shifted, n_bootstrap=0)

    deltas = metric_deltas(clean, shifted)

    assert set(deltas) == set(OVERALL_METRICS)
    expected = shifted["overall"]["accuracy"]["value"] - clean["overall"]["accuracy"]["value"]
    assert deltas["accuracy"] == expected


def test_metric_deltas_different_keys_raise():
    with pytest.raises(ParamsError, match="different metrics"):
        metric_deltas({"accuracy": 0.8}, {"macro_f1": 0.7})


def test_paired_deltas_of_identical_predictions_are_zero():
    y_true, y_prob = make_predictions()
    deltas = paired_metric_deltas(y_true, y_prob, y_prob.copy(), n_bootstrap=50)
    for name, entry in deltas.items():
        assert entry["value"] == 0.0, name
        assert entry["ci_low"] == 0.0, name
        assert entry["ci_high"] == 0.0, name


def test_paired_deltas_value_matches_metric_deltas():
    y_true, y_prob = make_predictions()
    _, y_prob_shifted = make_predictions(seed=1)
    paired = paired_metric_deltas(y_true, y_prob, y_prob_shifted, n_bootstrap=50)
    expected = metric_deltas(point_metrics(y_true, y_prob), point_metrics(y_true, y_prob_shifted))
    for name in OVERALL_METRICS:
        assert paired[name]["value"] == expected[name]
        assert paired[name]["ci_low"] <= paired[name]["ci_high"]
