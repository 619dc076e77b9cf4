"""Reading runs: their files (runs), statistics (stats), plots and reports; the grid that trains
them is ``training.compare``."""
