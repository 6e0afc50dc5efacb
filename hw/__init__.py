"""Gateware: the Amaranth sparse matrix-vector engine and its board tops."""
