"""Comparing runs: grids of heads x seeds (compare), statistics (stats), plots and reports."""
