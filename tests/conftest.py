import os

import numpy as np
import pytest
import torch

# Tests run on 2 cores: keep torch from oversubscribing them, and make runs repeatable.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
