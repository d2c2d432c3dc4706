"""The `kubelite` command line: kubectl's verbs for a kubelite cluster.

It talks only to the apiserver, through kubelite.client.Client. gRPC's own
logging is silenced before grpc is first imported, because every failure the
CLI reports must be one readable line on stderr.
"""

import os

# Remembered so that `kubelite up` does not pass the silence on to its children.
SILENCED_GRPC = "GRPC_VERBOSITY" not in os.environ
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
