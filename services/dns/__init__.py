"""kubelite's cluster DNS: Services and Endpoints as DNS records, everything else forwarded."""
