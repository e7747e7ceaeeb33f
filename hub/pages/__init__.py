"""Web pages the hub serves beside its API: the resident's private page (private.py)."""
