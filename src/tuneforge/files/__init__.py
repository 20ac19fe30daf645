"""Uploaded files: storage, listing, deletion and the data-check of training files."""
