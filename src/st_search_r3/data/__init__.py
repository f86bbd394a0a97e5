"""Real retrieval data built from text that ships with Debian packages (see each builder's docstring)."""
