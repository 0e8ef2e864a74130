import warnings

import numpy as np
import pytest
import scipy.special
from sklearn.exceptions import NotFittedError
from sklearn.metrics import brier_score_loss, log_loss

from dermaudit.calibration import (
    CALIBRATION_METRICS,
    CALIBRATORS,
    _per_sample_terms,
    _score_calibration_resamples,
    calibration_summary,
    evaluate_calibration,
    expected_calibration_error,
    fit_temperature,
    multiclass_brier_score,
    negative_log_likelihood,
    reliability_curve,
    softmax,
)
from dermaudit.exceptions import DataValidationError, ParamsError, RegistryError

# Five samples whose top-label confidences fall in four of five bins of width 0.2.
HAND_Y_TRUE = np.array([0, 1, 1, 0, 2])
HAND_Y_PROB = np.array(
    [
        [0.9, 0.05, 0.05],  # confidence 0.9, correct
        [0.9, 0.05, 0.05],  # confidence 0.9, wrong
        [0.1, 0.7, 0.2],  # confidence 0.7, correct
        [0.5, 0.3, 0.2],  # confidence 0.5, correct
        [0.4, 0.35, 0.25],  # confidence 0.4 (upper edge of bin 1), wrong
    ]
)


def make_calibrated_data(n=3000, seed=0, n_classes=7):
    """Logits and labels drawn from softmax(logits), so T = 1 is the true temperature."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, n_classes))
    probabilities = scipy.special.softmax(logits, axis=1)
    y_true = np.array([rng.choice(n_classes, p=row) for row in probabilities])
    return logits, y_true


def nll_at(logits, y_true, temperature):
    return log_loss(y_true, scipy.special.softmax(logits / temperature, axis=1), labels=range(logits.shape[1]))


# ---------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------


def test_softmax_matches_scipy():
    logits, _ = make_calibrated_data(n=50)
    np.testing.assert_allclose(softmax(logits, 2.0), scipy.special.softmax(logits / 2.0, axis=1), rtol=1e-12)


def test_softmax_large_logits_stay_finite():
    logits = np.array([[1000.0, 999.0, -1000.0]])
    result = softmax(logits)
    assert np.all(np.isfinite(result))
    np.testing.assert_allclose(result[0, :2], scipy.special.softmax([1.0, 0.0]), rtol=1e-12)


@pytest.mark.parametrize("temperature", [0.0, -1.0, np.inf, np.nan, True, "2"])
def test_softmax_invalid_temperature_raises(temperature):
    with pytest.raises(ParamsError, match="temperature must"):
        softmax(np.zeros((2, 3)), temperature)


# ---------------------------------------------------------------------------
# fit_temperature
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.5, 2.0, 3.0])
def test_fit_temperature_recovers_scale(scale):
    logits, y_true = make_calibrated_data()
    temperature = fit_temperature(logits * scale, y_true)
    assert temperature == pytest.approx(scale, rel=0.05)


@pytest.mark.parametrize("case", ["overconfident", "calibrated", "random_labels", "separable"])
def test_fit_temperature_never_increases_nll(case):
    logits, y_true = make_calibrated_data(n=500, seed=1)
    if case == "overconfident":
        logits = logits * 4.0
    elif case == "random_labels":
        y_true = np.random.default_rng(2).integers(0, 7, size=y_true.size)
    elif case == "separable":
        logits = 5.0 * np.eye(7)[y_true]

    temperature = fit_temperature(logits, y_true)

    assert temperature > 0
    assert nll_at(logits, y_true, temperature) <= nll_at(logits, y_true, 1.0) + 1e-12


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_fit_temperature_non_finite_logits_raise(bad_value):
    logits, y_true = make_calibrated_data(n=20)
    logits[4, 2] = bad_value
    with pytest.raises(DataValidationError, match=r"logits\[4\].*NaN or inf"):
        fit_temperature(logits, y_true)


def test_fit_temperature_label_count_mismatch_raises():
    logits, y_true = make_calibrated_data(n=20)
    with pytest.raises(DataValidationError, match="19 samples but logits has 20 rows"):
        fit_temperature(logits, y_true[:19])


# ---------------------------------------------------------------------------
# Calibrators
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", CALIBRATORS.names())
def test_calibrator_transform_returns_probabilities(name):
    logits, y_true = make_calibrated_data(n=300)
    calibrator = CALIBRATORS.get(name)().fit(logits * 2.0, y_true)
    y_prob = calibrator.transform(logits * 2.0)

    assert y_prob.shape == logits.shape
    np.testing.assert_allclose(y_prob.sum(axis=1), 1.0, rtol=1e-12)
    assert negative_log_likelihood(y_true, y_prob) <= nll_at(logits * 2.0, y_true, 1.0)


@pytest.mark.parametrize("name", CALIBRATORS.names())
def test_calibrator_unfitted_transform_raises(name):
    with pytest.raises(NotFittedError, match="not fitted"):
        CALIBRATORS.get(name)().transform(np.zeros((2, 7)))


def test_temperature_scaling_exposes_temperature():
    logits, y_true = make_calibrated_data(n=300)
    calibrator = CALIBRATORS.get("temperature_scaling")().fit(logits, y_true)
    assert calibrator.temperature_ == fit_temperature(logits, y_true)


def test_unknown_calibrator_lists_valid_names():
    with pytest.raises(RegistryError, match="valid names: temperature_scaling"):
        CALIBRATORS.get("platt")


# ---------------------------------------------------------------------------
# ECE and reliability curve
# ---------------------------------------------------------------------------


def test_ece_hand_computed():
    # Bin (0.8, 1]: 2 samples, accuracy 0.5, confidence 0.9 -> 2/5 * 0.4
    # Bin (0.6, 0.8]: accuracy 1, confidence 0.7 -> 1/5 * 0.3
    # Bin (0.4, 0.6]: accuracy 1, confidence 0.5 -> 1/5 * 0.5
    # Bin (0.2, 0.4]: accuracy 0, confidence 0.4 -> 1/5 * 0.4
    expected = 2 / 5 * 0.4 + 1 / 5 * 0.3 + 1 / 5 * 0.5 + 1 / 5 * 0.4
    assert expected_calibration_error(HAND_Y_TRUE, HAND_Y_PROB, n_bins=5) == pytest.approx(expected, abs=1e-12)


def test_ece_perfect_confident_predictions_is_zero():
    y_true = np.array([0, 1, 2])
    assert expected_calibration_error(y_true, np.eye(3)[y_true]) == 0.0


def test_reliability_curve_hand_computed():
    curve = reliability_curve(HAND_Y_TRUE, HAND_Y_PROB, n_bins=5)

    assert list(curve.columns) == ["bin_lower", "bin_upper", "count", "mean_confidence", "accuracy"]
    np.testing.assert_allclose(curve["bin_lower"], [0.0, 0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(curve["bin_upper"], [0.2, 0.4, 0.6, 0.8, 1.0])
    assert curve["count"].tolist() == [0, 1, 1, 1, 2]
    np.testing.assert_allclose(curve["mean_confidence"][1:], [0.4, 0.5, 0.7, 0.9])
    np.testing.assert_allclose(curve["accuracy"][1:], [0.0, 1.0, 1.0, 0.5])


def test_reliability_curve_empty_bin_is_nan():
    curve = reliability_curve(HAND_Y_TRUE, HAND_Y_PROB, n_bins=5)
    assert np.isnan(curve.loc[0, "mean_confidence"])
    assert np.isnan(curve.loc[0, "accuracy"])


@pytest.mark.parametrize("n_bins", [0, -3, 2.5, True])
def test_reliability_curve_invalid_bins_raise(n_bins):
    with pytest.raises(ParamsError, match="n_bins must be a positive int"):
        reliability_curve(HAND_Y_TRUE, HAND_Y_PROB, n_bins=n_bins)


# ---------------------------------------------------------------------------
# Brier score, NLL and summary
# ---------------------------------------------------------------------------


def test_brier_hand_computed():
    expected = np.mean([np.sum((HAND_Y_PROB[i] - np.eye(3)[HAND_Y_TRUE[i]]) ** 2) for i in range(5)])
    assert multiclass_brier_score(HAND_Y_TRUE, HAND_Y_PROB) == pytest.approx(expected, abs=1e-12)


def test_brier_missing_class_matches_sklearn():
    y_true = np.array([0, 0, 1])  # class 2 absent
    y_prob = HAND_Y_PROB[:3]
    expected = brier_score_loss(y_true, y_prob, labels=[0, 1, 2], scale_by_half=False)
    assert multiclass_brier_score(y_true, y_prob) == pytest.approx(expected, abs=1e-12)


def test_nll_hand_computed():
    expected = -np.mean(np.log(HAND_Y_PROB[np.arange(5), HAND_Y_TRUE]))
    assert negative_log_likelihood(HAND_Y_TRUE, HAND_Y_PROB) == pytest.approx(expected, abs=1e-12)


def test_float32_rows_do_not_warn():
    logits, y_true = make_calibrated_data(n=100)
    y_prob = scipy.special.softmax(logits, axis=1).astype(np.float32)
    with pytest.warns(UserWarning, match="do not sum to one"):
        log_loss(y_true, y_prob.astype(np.float64), labels=range(7))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        negative_log_likelihood(y_true, y_prob)
        multiclass_brier_score(y_true, y_prob)
        evaluate_calibration(y_true, y_prob, n_bootstrap=10)


def test_calibration_summary_values():
    summary = calibration_summary(HAND_Y_TRUE, HAND_Y_PROB, n_bins=5)

    assert set(summary) == set(CALIBRATION_METRICS)
    assert summary["accuracy"] == pytest.approx(3 / 5)
    assert summary["mean_confidence"] == pytest.approx((0.9 + 0.9 + 0.7 + 0.5 + 0.4) / 5)
    assert summary["ece"] == expected_calibration_error(HAND_Y_TRUE, HAND_Y_PROB, n_bins=5)


# ---------------------------------------------------------------------------
# Bootstrap intervals
# ---------------------------------------------------------------------------


def test_calibration_resample_scores_match_summary():
    logits, y_true = make_calibrated_data(n=200)
    y_prob = softmax(logits)
    rng = np.random.default_rng(0)
    weights = rng.multinomial(200, np.full(200, 1 / 200), size=3).astype(float)

    scores = _score_calibration_resamples(_per_sample_terms(y_true, y_prob, 15), weights)

    for i in range(3):
        rows = np.repeat(np.arange(200), weights[i].astype(int))
        expected = calibration_summary(y_true[rows], y_prob[rows])
        for name in CALIBRATION_METRICS:
            assert scores[name][i] == pytest.approx(expected[name], abs=1e-10), name


def test_evaluate_calibration_intervals():
    logits, y_true = make_calibrated_data(n=500)
    y_prob = softmax(logits * 2.0)
    result = evaluate_calibration(y_true, y_prob, n_bootstrap=200)
    summary = calibration_summary(y_true, y_prob)

    for name in CALIBRATION_METRICS:
        assert result[name]["value"] == summary[name]
        assert result[name]["ci_low"] <= result[name]["value"] <= result[name]["ci_high"], name
        assert result[name]["n_resamples"] == 200
