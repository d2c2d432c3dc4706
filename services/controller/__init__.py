"""The controller manager: kubelite's reconcile loops in one leader-elected process.

Each controller is a module (replicaset, deployment, endpoints,
garbagecollector, nodelifecycle) built on base.Controller: informer handlers
enqueue keys, and workers call a level-triggered, idempotent `sync(key)`.
manager.py wires the enabled ones onto shared informers for one term of
leadership; __main__.py is the process.
"""
