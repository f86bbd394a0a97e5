"""search-r3 and the local retrieval tasks in MTEB's registries (``hook`` registers them when mteb is imported)."""
