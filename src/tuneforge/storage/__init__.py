from tuneforge.storage.base import BlobStore, BlobWriter
from tuneforge.storage.local import LocalBlobStore

__all__ = ["BlobStore", "BlobWriter", "LocalBlobStore"]
