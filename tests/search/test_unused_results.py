"""``scenetune sweep``'s Tuner returns without reading every trial's results
back (search/unused_results.py), under real Ray Tune 2.60 on the embedded Ray."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
from ray import tune
from ray.tune.analysis.experiment_analysis import ExperimentAnalysis

from scenetune.search import ray_compat
from scenetune.search.unused_results import no_trial_dataframes
from tests.search.test_ray_compat import one_warning_line


def two_epochs(config):
    for epoch in range(2):
        tune.report({"score": config["i"] + epoch})


def fit(tmp_path, name: str):
    return tune.Tuner(two_epochs, param_space={"i": tune.grid_search([0, 1, 2])},
                      run_config=tune.RunConfig(storage_path=str(tmp_path), name=name, verbose=0)).fit()


@pytest.mark.slow
def test_inside_it_no_trial_s_results_are_read_back_and_outside_ray_reads_them(ray_local, tmp_path):
    own = ExperimentAnalysis._fetch_trial_dataframes
    with no_trial_dataframes():
        assert ExperimentAnalysis._fetch_trial_dataframes is not own
        results = fit(tmp_path, "inside")
    assert ExperimentAnalysis._fetch_trial_dataframes is own
    assert not results.errors and len(results) == 3
    assert all(result.metrics_dataframe is None for result in results)
    assert sorted(result.metrics["score"] for result in results) == [1, 2, 3]  # the rest as Ray builds it
    assert sorted(result.config["i"] for result in results) == [0, 1, 2]
    assert len(list((tmp_path / "inside").glob("*/result.json"))) == 3  # the trials' own files are there

    results = fit(tmp_path, "outside")  # Ray's own again
    assert all(isinstance(result.metrics_dataframe, pd.DataFrame) and len(result.metrics_dataframe) == 2
               for result in results)


def test_it_puts_ray_s_reading_back_when_the_fit_fails():
    own = ExperimentAnalysis._fetch_trial_dataframes
    with pytest.raises(RuntimeError), no_trial_dataframes():
        raise RuntimeError("the sweep failed")
    assert ExperimentAnalysis._fetch_trial_dataframes is own


def test_a_ray_without_it_reads_as_ray_does_with_one_warning_line(monkeypatch, caplog):
    monkeypatch.delattr(ExperimentAnalysis, "_fetch_trial_dataframes")
    with caplog.at_level(logging.WARNING, logger=ray_compat.__name__), no_trial_dataframes():
        assert not hasattr(ExperimentAnalysis, "_fetch_trial_dataframes")
    one_warning_line(caplog, "ExperimentAnalysis._fetch_trial_dataframes")
