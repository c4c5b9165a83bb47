"""Features: preprocessing from encoder metadata, batched extraction, the content-addressed store."""
