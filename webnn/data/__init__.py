"""Data modules: the dataset interface, loading a data module, checking data against a spec."""

from webnn.data.base import (
    ArrayDataset,
    Batch,
    Dataset,
    DatasetError,
    IterableDataset,
    batch_indices,
    chunk_bounds,
)
from webnn.data.checks import check_dataset, interface_problems
from webnn.data.loader import (
    DataModuleError,
    coerce_options,
    import_data_module,
    load_data_module,
)

__all__ = [
    "ArrayDataset",
    "Batch",
    "DataModuleError",
    "Dataset",
    "DatasetError",
    "IterableDataset",
    "batch_indices",
    "check_dataset",
    "chunk_bounds",
    "coerce_options",
    "import_data_module",
    "interface_problems",
    "load_data_module",
]
