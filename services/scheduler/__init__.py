"""kubelite's scheduler: binds each pending pod to a node, as kube-scheduler does.

- `framework`: PodInfo/NodeInfo, the plugin interfaces, filter → score → select,
  and Kubernetes' "0/N nodes are available: ..." message;
- `plugins/`: one filter or score plugin per module;
- `cache`: nodes and what their pods have claimed, with assumed pods;
- `queue`: active, backoff and unschedulable pods;
- `scheduler`: informers → cache and queue; the leader's scheduling loop;
- `__main__`: flags → Config → wiring → run_component.
"""
