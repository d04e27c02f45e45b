"""The work folder every bad-input case runs in (data files, recipes, broken model folders), laid out once."""

from __future__ import annotations

import pytest

from tests.badinput.cases import make_fixtures


@pytest.fixture(scope="session")
def workdir(tmp_path_factory, load_builtin):
    root = tmp_path_factory.mktemp("badinput")
    make_fixtures(root, load_builtin("tiny-t5"))
    return root
