"""Model registry: model.zip versions with sha256 and tags on a local directory or Azure Blob storage."""
from brainwave.registry.registry import ModelRegistry, ModelVersion, RegistryError
from brainwave.registry.store import AzureBlobStore, LocalDirectoryStore

__all__ = ["AzureBlobStore", "LocalDirectoryStore", "ModelRegistry", "ModelVersion", "RegistryError", "open_registry"]

DEFAULT_DIRECTORY = "~/.brainwave/registry"


def open_registry(directory: str | None = None, connection_string: str | None = None, account_url: str | None = None,
                  container: str = "brainwave-models", cache_dir: str | None = None) -> ModelRegistry:
    """Azure when a connection string or account URL is given (or AZURE_STORAGE_CONNECTION_STRING is set),
    otherwise a local directory (BRAINWAVE_REGISTRY, default ~/.brainwave/registry)."""
    import os

    connection_string = connection_string or (None if directory else os.environ.get("AZURE_STORAGE_CONNECTION_STRING"))
    if connection_string or account_url:
        store = AzureBlobStore(container, connection_string=connection_string, account_url=account_url,
                               credential=None if connection_string else _azure_credential())
    else:
        store = LocalDirectoryStore(directory or os.environ.get("BRAINWAVE_REGISTRY", DEFAULT_DIRECTORY))
    return ModelRegistry(store, cache_dir)


def _azure_credential():
    import os

    key = os.environ.get("AZURE_STORAGE_KEY")
    account = os.environ.get("AZURE_STORAGE_ACCOUNT")
    return {"account_name": account, "account_key": key} if key and account else None
