"""Source catalogs: import with column metadata, a spatial index, cone search."""
