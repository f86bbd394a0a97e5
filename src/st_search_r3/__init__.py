"""st-search-r3: Search-R3 (reason, then embed) for sentence-transformers and MTEB."""

__version__ = "0.5.0"
__all__ = ["EMBED_TOKEN", "SearchR3"]


def __getattr__(name: str):
    # Lazy, so that the MTEB import hook and the CLI start without importing torch.
    if name == "SearchR3":
        from st_search_r3.module import SearchR3

        return SearchR3
    if name == "EMBED_TOKEN":
        from st_search_r3.settings import EMBED_TOKEN

        return EMBED_TOKEN
    raise AttributeError(f"module 'st_search_r3' has no attribute {name!r}")
