import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-103-raw"


@pytest.fixture
def wikitext_dir() -> Path:
    "The local WikiText slice: $CL_COURSE_DATA, or ../shared/data/wikitext-103-raw beside the repository."
    d = Path(os.environ.get("CL_COURSE_DATA") or SHARED)
    if not (d / "wiki.test.raw").exists():
        pytest.fail(f"No WikiText slice at {d}: set CL_COURSE_DATA to a folder holding wiki.test.raw")
    return d
