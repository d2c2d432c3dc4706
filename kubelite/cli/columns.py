"""The CLI's name for kubelite.printing, where the column logic lives (so that the
apiserver's server-side Tables use the very same columns without importing the CLI)."""

from kubelite.printing import *  # noqa: F403
from kubelite.printing import (  # noqa: F401 - the names callers use
    GENERIC,
    TableOptions,
    event_time,
    format_endpoints,
    format_selector,
    node_roles,
    parse_timestamp,
    pod_status,
    sort_for_display,
    table,
)
