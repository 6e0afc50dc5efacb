"""Simulation: Verilator/cocotb runners and testbenches joining hw/ and sw/."""
