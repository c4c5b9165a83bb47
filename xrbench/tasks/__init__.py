"""Tasks: YAML definitions (packaged here), their schema, and the catalog that finds them."""
