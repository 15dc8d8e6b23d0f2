"""Input/output adapters: decoding uploaded images and fetching them from URLs."""
