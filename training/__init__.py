"""Training side: synthetic photos, data import, loaders, training, evaluation and export."""
