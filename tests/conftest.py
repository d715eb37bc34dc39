"""Shared fixtures."""

import pytest


@pytest.fixture(scope="module")
def single_torch_thread():
    """Run a module's tiny torch tensors on one thread: as fast, and immune to oversubscription
    on shared CI cores (two threads once took the validate suite from ~18 s to over 400 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
