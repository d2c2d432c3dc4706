"""Kubernetes' REST API as a second face of the apiserver (see docs/rest-api.md).

It runs inside the apiserver process and calls the same Registry, WatchCache
and metrics objects the gRPC ApiService uses, so validation, defaults,
resourceVersions and watch order are the same through both faces.
"""

from .app import RestApi, start

__all__ = ["RestApi", "start"]
