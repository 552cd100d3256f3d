"""Tests of the installed pip package (scripts/test-python-package.sh runs them in a fresh
venv after `pip install .`). They import `hpl` from site-packages, never from the source tree:
the first test proves it. Models: $HPL_TEST_MODELS (tests/data/models of the checkout) and
$HPL_DEFAULT_MODEL (Gemma 3 270M, slow enough per token to catch a stop in flight)."""
import os
from pathlib import Path

import pytest

MODELS = Path(os.environ.get("HPL_TEST_MODELS", Path(__file__).resolve().parents[1] / "data" / "models"))
STORY = str(MODELS / "stories260K.gguf")
OTHER = str(MODELS / "TinyStories-656K.f16.gguf")
STORY_TEXT = ", there was a little girl named Lily."  # greedy continuation of "Once upon a time"


@pytest.fixture(scope="session")
def story():
    import hpl

    with hpl.Model(STORY, n_threads=1, n_ctx=256, n_ubatch=16) as m:
        yield m


@pytest.fixture(scope="session")
def slow_model_path():
    p = os.environ.get("HPL_DEFAULT_MODEL", "")
    if not p or not os.path.exists(p):
        pytest.skip("HPL_DEFAULT_MODEL (bash scripts/default-model.sh) not set")
    return p


@pytest.fixture(scope="session")
def slow(slow_model_path):
    import hpl

    with hpl.Model(slow_model_path, n_threads=2, n_ctx=512, n_ubatch=16) as m:
        yield m
