"""sparsemac: pruned neural networks on a CSR(C) sparse matrix-vector engine."""

__version__ = "0.1.0"
