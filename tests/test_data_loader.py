"""Loading data modules by path or dotted name; option coercion; clear errors."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from webnn.data import ArrayDataset, DataModuleError, load_data_module

HEADER = '''
from __future__ import annotations
from pathlib import Path
import numpy as np
from webnn.data import ArrayDataset, DataModuleError

def dataset(n=4):
    x = np.zeros((n, 2), np.float32)
    y = np.zeros(n, np.int32)
    return ArrayDataset(x, y, x[:1], y[:1])
'''


def write_module(directory: Path, body: str, name: str | None = None) -> Path:
    path = directory / f"{name or 'data_' + uuid.uuid4().hex[:8]}.py"
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def test_load_by_path_with_typed_options(tmp_path: Path) -> None:
    path = write_module(tmp_path, '''
        SEEN = {}
        def load(n: int = 1, rate: float = 0.5, flag: bool = False, name: str = "a",
                 where: Path | None = None, untyped=3, raw=None):
            SEEN.update(n=n, rate=rate, flag=flag, name=name, where=where, untyped=untyped,
                        raw=raw)
            return dataset(n)
    ''')
    options = {"n": "6", "rate": "0.25", "flag": "yes", "name": "b", "where": "/tmp/x",
               "untyped": "7", "raw": "as is"}
    data = load_data_module(str(path), options)
    assert isinstance(data, ArrayDataset) and data.num_train == 6
    seen = next(m for m in sys.modules.values()
                if getattr(m, "__file__", None) == str(path.resolve())).SEEN
    assert seen == {"n": 6, "rate": 0.25, "flag": True, "name": "b", "where": Path("/tmp/x"),
                    "untyped": 7, "raw": "as is"}


def test_load_by_dotted_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_module(tmp_path, "def load(n: int = 2):\n    return dataset(n)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert load_data_module(path.stem, {"n": "3"}).num_train == 3
    finally:
        sys.modules.pop(path.stem, None)


def test_kwargs_receive_strings(tmp_path: Path) -> None:
    path = write_module(tmp_path, '''
        def load(**options):
            assert options == {"anything": "1"}, options
            return dataset()
    ''')
    assert load_data_module(str(path), {"anything": "1"}).num_train == 4


@pytest.mark.parametrize(("body", "options", "message"), [
    ("X = 1\n", {}, "has no load\\(\\) function; define load\\(\\*\\*options\\)"),
    ("load = 3\n", {}, "has no load\\(\\) function"),
    ("def load(n: int = 1):\n    return dataset(n)\n", {"m": "1"},
     "load\\(\\) takes no option 'm' \\(its options: n\\)"),
    ("def load(n: int = 1):\n    return dataset(n)\n", {"n": "two"},
     "option n='two' must be an int"),
    ("def load(flag: bool = False):\n    return dataset()\n", {"flag": "maybe"},
     "option flag='maybe' must be a bool"),
    ("def load(path: str, n: int = 1):\n    return dataset(n)\n", {},
     "load\\(\\) needs the option\\(s\\) path \\(--data-option path=...\\)"),
    ("def load():\n    raise ValueError('no rows in table')\n", {},
     "load\\(\\) raised ValueError: no rows in table"),
    ("def load():\n    raise DataModuleError('file /x missing')\n", {},
     ": file /x missing$"),
    ("def load():\n    return (1, 2)\n", {},
     "load\\(\\) returned an unusable dataset: the dataset is a tuple; expected "
     "webnn.data.ArrayDataset"),
    ("def load():\n    return ArrayDataset(np.zeros((3, 2)), np.zeros(2), np.zeros((1, 2)), "
     "np.zeros(1))\n", {}, ": x_train has 3 examples but y_train has 2"),
])
def test_module_errors(tmp_path: Path, body: str, options: dict, message: str) -> None:
    path = write_module(tmp_path, body)
    with pytest.raises(DataModuleError, match=message) as info:
        load_data_module(str(path), options)
    assert str(info.value).startswith(f"data module {path}")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    with pytest.raises(DataModuleError, match=f"data module file not found: {missing}"):
        load_data_module(str(missing), {})


def test_module_that_fails_to_import(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import no_such_dependency_xyz\n")
    with pytest.raises(DataModuleError, match="failed to import: ModuleNotFoundError: No module "
                                              "named 'no_such_dependency_xyz'"):
        load_data_module(str(path), {})


def test_unknown_dotted_name_suggests_a_shipped_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data_modules").mkdir()
    (tmp_path / "data_modules" / "cifar_xyz.py").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataModuleError, match="no data module 'cifar_xyz': not a .py path and "
                                              "not an importable module; did you mean "
                                              "data_modules/cifar_xyz.py\\?"):
        load_data_module("cifar_xyz", {})


def test_returned_dataset_is_usable(tmp_path: Path) -> None:
    path = write_module(tmp_path, "def load():\n    return dataset(5)\n")
    data = load_data_module(str(path))
    batch = next(data.train_batches(2, seed=0))
    assert batch.x.shape == (2, 2) and batch.y.dtype == np.int32
