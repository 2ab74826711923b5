"""CrossScore (reference-based): network, checkpoints, data, training/testing, prediction, figures, demo data."""
