"""Process settings for serving: BLAS and XGBoost threads for a small, shared machine."""

from __future__ import annotations


def limit_threads(threads: int = 1) -> None:
    """One BLAS / OpenMP thread per worker: requests are small, workers run side by side.

    Thread pools sized to every core, in each of several workers, fight over the same
    cores and turn a millisecond of work into tail latency.
    """
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    torch.set_num_threads(threads)  # top-k over the catalogue (candidates.base.top_k)
