import os

import numpy as np
import pytest
import torch

# One torch thread by default: tiny models gain little from a second one, and on a machine
# shared with other jobs two OpenMP threads wait on each other (measured 2-10x slower, enough
# to time out the session's training fixture). IGPT_TEST_THREADS=2 on a dedicated machine.
TEST_THREADS = max(1, int(os.environ.get("IGPT_TEST_THREADS", "1")))
torch.set_num_threads(TEST_THREADS)
os.environ["IGPT_FORENSICS_THREADS"] = str(TEST_THREADS)  # what CLI commands default to


@pytest.fixture
def rng():
    return np.random.default_rng(0)


TINY_TRAIN = dict(data="builtin", size=8, colors=16, preset="tiny", steps=300, batch_size=32,
                  train_patches=2000, eval_patches=128, eval_every=100, checkpoint_every=300,
                  warmup=20, lr=3e-3, seed=0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A real, trained checkpoint folder: tiny preset, 8x8 images, 16 colors, 300 steps on
    builtin training photos (about 15 s on 2 cores). Shared by the whole session."""
    from igpt_forensics.generators.config import TrainConfig
    from igpt_forensics.generators.train import train_generator

    out = tmp_path_factory.mktemp("tiny_checkpoint")
    train_generator(TrainConfig(**TINY_TRAIN), out)
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tiny_checkpoint, tmp_path_factory):
    """A labeled dataset of the tiny checkpoint: 60 items of top-half, box and full fakes.
    Shared by the session: a test that changes a file puts it back."""
    from igpt_forensics.generators.dataset import generate_dataset

    out = tmp_path_factory.mktemp("tiny_dataset") / "ds"
    generate_dataset(out, 60, model=tiny_checkpoint, masks="top-half,box,full", seed=1,
                     batch_size=32)
    return out


@pytest.fixture(scope="session")
def c2pa_chain(tmp_path_factory):
    pytest.importorskip("c2pa", reason="C2PA tests need c2pa-python (the dev extra)")
    from igpt_forensics.credentials import throwaway_chain

    return throwaway_chain(tmp_path_factory.mktemp("c2pa"))
