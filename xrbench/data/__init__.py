"""Data: the sample record, image IO, dataset loaders (official layouts) and the phantom."""
