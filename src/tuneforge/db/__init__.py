from tuneforge.db.models import ApiKey, Base, BaseModelEntry, FileRecord, FineTunedModel, Project
from tuneforge.db.session import Database

__all__ = ["ApiKey", "Base", "BaseModelEntry", "Database", "FileRecord", "FineTunedModel", "Project"]
