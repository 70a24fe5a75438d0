"""A new materialization reaches the service's in-process item features without a restart."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from shoprank.features import store
from shoprank.serving.app import ServingApp

pytestmark = pytest.mark.slow


def _latest_product_stamp(app: ServingApp) -> pd.Timestamp:
    table = app.recommender.features.online.table("product_features")
    return pd.to_datetime(table["_feature_ts"], utc=True).max()


def test_the_next_days_materialization_is_picked_up(served_copy, served_cutoff):
    settings = served_copy("refresh", online=True)
    app = ServingApp.load(settings)
    before = _latest_product_stamp(app)
    served = app.recommender.features
    assert not app.refresh()  # nothing new: the same tables keep serving
    assert app.recommender.features is served

    store.materialize(settings, end=served_cutoff + timedelta(days=1))
    assert app.refresh()
    assert app.recommender.features is not served  # swapped whole
    assert _latest_product_stamp(app) > before
    assert _latest_product_stamp(app) <= pd.Timestamp(served_cutoff + timedelta(days=1))
    assert not app.refresh()
