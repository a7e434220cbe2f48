import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-raw"

# Every test finds the data the same way, subprocesses included: $CL_COURSE_DATA, else the local slice beside the
# repository (../shared/data/wikitext-103-raw) when it is there; else the hub.
if not os.environ.get("CL_COURSE_DATA") and (SHARED / "wiki.test.raw").exists():
    os.environ["CL_COURSE_DATA"] = str(SHARED)


@pytest.fixture
def wikitext_dir() -> Path:
    "The local WikiText slice: $CL_COURSE_DATA, or ../shared/data/wikitext-103-raw beside the repository."
    d = Path(os.environ.get("CL_COURSE_DATA") or SHARED)
    if not (d / "wiki.test.raw").exists():
        pytest.fail(f"No WikiText slice at {d}: set CL_COURSE_DATA to a folder holding wiki.test.raw")
    return d


@pytest.fixture(scope="session")
def standin_gpt2(tmp_path_factory) -> Path:
    "GPT-2 at 124M (random weights, GPT-2's configuration and exact tokenizer) saved once per session with save_pretrained."
    from standin import make_standin_model
    return make_standin_model(tmp_path_factory.mktemp("standin") / "gpt2")


@pytest.fixture(scope="session")
def full_data(tmp_path_factory) -> Path:
    "A WikiText folder with a train split (the local slice), as the full size reads offline."
    from standin import make_full_data, shared_data
    return make_full_data(tmp_path_factory.mktemp("standin") / "wikitext", shared_data())
