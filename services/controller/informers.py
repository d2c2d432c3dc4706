"""One informer per resource, shared by every controller in the process.

As client-go's SharedInformerFactory: the ReplicaSet, Deployment and garbage
collector controllers all read pods, so they share one list+watch of pods and
one cache, each with its own handlers. Indices are registered by name and
shared too: asking twice for the same index is fine, as long as the function
is the same one.
"""

from __future__ import annotations

from kubelite.client import Client
from kubelite.informer import IndexFunc, Informer, index_by_namespace

NAMESPACE_INDEX = "namespace"


class InformerFactory:
    def __init__(self, client: Client, *, resync: float = 0.0) -> None:
        self.client = client
        self.resync = resync
        self._informers: dict[str, Informer] = {}
        self._index_funcs: dict[tuple[str, str], IndexFunc] = {}

    def informer(self, resource: str) -> Informer:
        """The shared informer of a resource (plural name), created on first use."""
        informer = self._informers.get(resource)
        if informer is None:
            informer = Informer(self.client, resource, resync=self.resync)
            self._informers[resource] = informer
            self.ensure_index(resource, NAMESPACE_INDEX, index_by_namespace)
        return informer

    def ensure_index(self, resource: str, name: str, fn: IndexFunc) -> None:
        """Adds the named index to the resource's informer unless it is there already."""
        known = self._index_funcs.get((resource, name))
        if known is not None:
            if known is not fn:
                raise ValueError(f"index {name!r} on {resource} registered with two functions")
            return
        self._index_funcs[(resource, name)] = fn
        self.informer(resource).add_index(name, fn)

    @property
    def informers(self) -> dict[str, Informer]:
        return dict(self._informers)

    def start(self) -> None:
        """Starts every informer made so far (starting twice is harmless)."""
        for informer in self._informers.values():
            informer.start()

    async def stop(self) -> None:
        for informer in self._informers.values():
            await informer.stop()


__all__ = ["InformerFactory", "NAMESPACE_INDEX"]
