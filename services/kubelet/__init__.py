"""The kubelet: one per node. It registers the Node and renews its Lease, runs the
pods bound to the node through a container runtime (services.kubelet.runtime),
probes them, restarts them under restartPolicy with CrashLoopBackOff, reports
their status and serves their logs. Start with services.kubelet.kubelet.

This package's __init__ stays empty of imports: the container shim
(services.kubelet.shim) must start in milliseconds.
"""
